package pdp_test

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/relations"
	"github.com/ciampdp/pdp/pdp/sources"
)

// The bank of the facts benchmarks: a payment is allowed when the principal
// owns the account, one relationship fact, asked of SpiceDB.
var benchFactsFiles = map[string]string{
	"schema/bank.cedarschema": `
entity User;
entity Account;
action pay appliesTo { principal: [User], resource: [Account],
  context: { amount?: Long, rel: { owner: Bool } } };
`,
	"schema/bank.zed": `
definition user {}
definition account {
	relation owner: user
	relation delegate: user
	permission pay = owner + delegate
}
`,
	"policies/bank.cedar": `
@id("owner-pays")
permit (principal, action == Action::"pay", resource) when { context.rel.owner };
`,
}

// The population: every account has an owner (account i belongs to user
// i mod users, two accounts each) and every tenth a delegate.
const (
	benchFactUsers    = 10_000
	benchFactAccounts = 20_000
)

// pair is a principal and a resource of one decision.
type pair struct{ user, account int }

// randomPair draws half the time an account with its owner (allowed), half
// the time any user and any account (nearly always denied): out of about
// 200 million pairs, so SpiceDB rarely answers from its dispatch cache.
func randomPair(rng *rand.Rand) pair {
	a := rng.IntN(benchFactAccounts)
	if rng.IntN(2) == 0 {
		return pair{user: a % benchFactUsers, account: a}
	}
	return pair{user: rng.IntN(benchFactUsers), account: a}
}

func (p pair) request() pdp.Request {
	return pdp.Request{
		Subject:  pdp.Entity{Type: "User", ID: fmt.Sprintf("u%d", p.user)},
		Action:   pdp.Action{Name: "pay"},
		Resource: pdp.Entity{Type: "Account", ID: fmt.Sprintf("acc%d", p.account)},
		Context:  map[string]any{"amount": 250},
	}
}

func (p pair) check() relations.Check {
	return relations.Check{
		Resource:   relations.Object{Type: "account", ID: fmt.Sprintf("acc%d", p.account)},
		Permission: "owner",
		Subject:    relations.Object{Type: "user", ID: fmt.Sprintf("u%d", p.user)},
	}
}

// factsStore opens an embedded SpiceDB of the engine (memory, or postgres
// on a database of its own), writes the bundle's SpiceDB schema and
// imports the population.
func factsStore(b *testing.B, engine string, bundle *policy.Bundle, cacheSize int) *relations.Store {
	b.Helper()
	cfg := relations.Config{Engine: engine, CacheSize: cacheSize}
	if engine == relations.EnginePostgres {
		cfg.PostgresURI = benchDatabase(b)
	}
	ctx := context.Background()
	s, err := relations.Open(ctx, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if _, err := s.WriteSchema(ctx, bundle.SpiceDBSchema()); err != nil {
		b.Fatal(err)
	}
	rels := func(yield func(relations.Relationship) bool) {
		for a := range benchFactAccounts {
			acc := relations.Object{Type: "account", ID: fmt.Sprintf("acc%d", a)}
			if !yield(relations.Relationship{Resource: acc, Relation: "owner", Subject: relations.Object{Type: "user", ID: fmt.Sprintf("u%d", a%benchFactUsers)}}) {
				return
			}
			if a%10 == 0 && !yield(relations.Relationship{Resource: acc, Relation: "delegate", Subject: relations.Object{Type: "user", ID: fmt.Sprintf("u%d", (a+1)%benchFactUsers)}}) {
				return
			}
		}
	}
	if _, err := s.ImportRelationships(ctx, rels, 0, nil); err != nil {
		b.Fatal(err)
	}
	return s
}

// benchDatabase creates a database for one benchmark on the server of
// PDP_TEST_POSTGRES_URL (dropped at cleanup), or skips without it.
func benchDatabase(b *testing.B) string {
	b.Helper()
	base := os.Getenv("PDP_TEST_POSTGRES_URL")
	if base == "" {
		b.Skip("SKIPPED: PDP_TEST_POSTGRES_URL is not set (export PDP_TEST_POSTGRES_URL=$(scripts/postgres.sh start))")
	}
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	r := make([]byte, 6)
	_, _ = crand.Read(r)
	name := "pdp_bench_" + hex.EncodeToString(r)
	if err := exec("CREATE DATABASE " + name); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		// FORCE cannot end an autovacuum worker (it runs as the
		// superuser): one that is analysing the fresh tables is waited out.
		var err error
		for range 50 {
			if err = exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err == nil || !strings.Contains(err.Error(), "42501") {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			b.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// latencies collects per-operation durations and reports their median
// and 99th percentile.
type latencies []time.Duration

func (l latencies) report(b *testing.B, prefix string) time.Duration {
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	p50, p99 := l[len(l)/2], l[len(l)*99/100]
	b.ReportMetric(float64(p50.Nanoseconds()), prefix+"p50-ns")
	b.ReportMetric(float64(p99.Nanoseconds()), prefix+"p99-ns")
	return p50
}

// BenchmarkFactDecision measures a decision whose action declares one
// relationship fact (context.rel.owner), through pdp.Engine.Decide and
// the binary's adapter (sources.Facts), against embedded SpiceDB (memory; PostgreSQL with
// PDP_TEST_POSTGRES_URL), beside a bare CheckPermission of the same fact:
//   - bare-check: Store.CheckPermission of the fact, no engine, no cache;
//   - decide-uncached: a decision, fact cache off (one SpiceDB call each);
//   - interleaved: bare checks and uncached decisions alternately, so
//     that both see the same machine load; reports overhead-% =
//     decide p50 / bare p50 - 1;
//   - decide-cached: fact cache on, principals and resources from a hot set
//     of 1,000 pairs (warmed first); reports the cache hit ratio;
//   - decide-cached-parallel: the same from GOMAXPROCS goroutines;
//     reports decisions/s.
//
// The random pairs come from 10,000 users and 20,000 accounts.
func BenchmarkFactDecision(b *testing.B) {
	files := map[string][]byte{}
	for k, v := range benchFactsFiles {
		files[k] = []byte(v)
	}
	bundle, err := policy.LoadFiles(files)
	if err != nil {
		b.Fatal(err)
	}
	// New pairs every run: with -count, sub-benchmarks run again on the
	// same stores, and the pairs of the run before would be answered from
	// SpiceDB's dispatch cache.
	seed := uint64(time.Now().UnixNano())
	var runs atomic.Uint64
	for _, engine := range []string{relations.EngineMemory, relations.EnginePostgres} {
		b.Run(engine, func(b *testing.B) {
			raw := factsStore(b, engine, bundle, -1)
			cached := factsStore(b, engine, bundle, 0)
			uncachedEngine := pdp.NewEngine(pdp.Components{Bundles: bundle, Facts: sources.Facts{Store: raw}})
			cachedEngine := pdp.NewEngine(pdp.Components{Bundles: bundle, Facts: sources.Facts{Store: cached}})
			ctx := context.Background()
			// Unmeasured first: right after the import the first thousands
			// of checks are slower (measured: 3-4× on memory), which would
			// count against whichever sub-benchmark runs first.
			warm := rand.New(rand.NewPCG(seed, runs.Add(1)))
			for range 2000 {
				p := randomPair(warm)
				if _, _, err := raw.CheckPermission(ctx, p.check()); err != nil {
					b.Fatal(err)
				}
				if _, err := uncachedEngine.Decide(ctx, randomPair(warm).request()); err != nil {
					b.Fatal(err)
				}
			}

			b.Run("bare-check", func(b *testing.B) {
				rng := rand.New(rand.NewPCG(seed, runs.Add(1)))
				var lat latencies
				b.ReportAllocs()
				for b.Loop() {
					c := randomPair(rng).check()
					start := time.Now()
					if _, _, err := raw.CheckPermission(ctx, c); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
				}
				lat.report(b, "")
			})
			b.Run("decide-uncached", func(b *testing.B) {
				rng := rand.New(rand.NewPCG(seed, runs.Add(1)))
				var lat latencies
				b.ReportAllocs()
				for b.Loop() {
					req := randomPair(rng).request()
					start := time.Now()
					d, err := uncachedEngine.Decide(ctx, req)
					if err != nil || len(d.Facts) != 1 {
						b.Fatalf("decision %+v, %v", d, err)
					}
					lat = append(lat, time.Since(start))
				}
				lat.report(b, "")
			})
			b.Run("interleaved", func(b *testing.B) {
				rng := rand.New(rand.NewPCG(seed, runs.Add(1)))
				var bare, decide latencies
				i := 0
				for b.Loop() {
					p := randomPair(rng)
					if i%2 == 0 {
						c := p.check()
						start := time.Now()
						if _, _, err := raw.CheckPermission(ctx, c); err != nil {
							b.Fatal(err)
						}
						bare = append(bare, time.Since(start))
					} else {
						req := p.request()
						start := time.Now()
						if _, err := uncachedEngine.Decide(ctx, req); err != nil {
							b.Fatal(err)
						}
						decide = append(decide, time.Since(start))
					}
					i++
				}
				bp50 := bare.report(b, "bare-")
				dp50 := decide.report(b, "decide-")
				if bp50 > 0 {
					b.ReportMetric(100*(float64(dp50)/float64(bp50)-1), "overhead-%")
				}
			})

			hot := make([]pdp.Request, 1000)
			rng := rand.New(rand.NewPCG(seed, runs.Add(1)))
			for i := range hot {
				hot[i] = randomPair(rng).request()
				if _, err := cachedEngine.Decide(ctx, hot[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("decide-cached", func(b *testing.B) {
				rng := rand.New(rand.NewPCG(seed, runs.Add(1)))
				before := cached.Cache().Stats()
				var lat latencies
				b.ReportAllocs()
				for b.Loop() {
					req := hot[rng.IntN(len(hot))]
					start := time.Now()
					if _, err := cachedEngine.Decide(ctx, req); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
				}
				lat.report(b, "")
				reportHits(b, before, cached.Cache().Stats())
			})
			b.Run("decide-cached-parallel", func(b *testing.B) {
				before := cached.Cache().Stats()
				started := time.Now()
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					rng := rand.New(rand.NewPCG(seed, runs.Add(1)))
					for pb.Next() {
						if _, err := cachedEngine.Decide(ctx, hot[rng.IntN(len(hot))]); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(started).Seconds(), "decisions/s")
				reportHits(b, before, cached.Cache().Stats())
			})
		})
	}
}

func reportHits(b *testing.B, before, after relations.CacheStats) {
	hits, misses := after.Hits-before.Hits, after.Misses-before.Misses
	if hits+misses > 0 {
		b.ReportMetric(float64(hits)/float64(hits+misses), "hit-ratio")
	}
}
