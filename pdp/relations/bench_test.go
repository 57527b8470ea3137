package relations

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	benchAccounts = 1000
	benchUsers    = 200
)

// benchStore opens a store of the mode with the test schema and 1,000
// accounts (an owner each, a caveated delegate on every tenth).
func benchStore(b *testing.B, m mode, cfg Config) *Store {
	b.Helper()
	s := m.open(b, cfg).Store
	rels := func(yield func(Relationship) bool) {
		for i := range benchAccounts {
			acc := account(fmt.Sprintf("acc%d", i))
			if !yield(rel(acc, "owner", user(fmt.Sprintf("u%d", i%benchUsers)))) {
				return
			}
			if i%10 == 0 && !yield(Relationship{Resource: acc, Relation: "delegate", Subject: user(fmt.Sprintf("u%d", (i+1)%benchUsers)),
				Caveat: "within_limit", CaveatContext: map[string]any{"limit": 100}}) {
				return
			}
		}
	}
	if _, err := s.ImportRelationships(context.Background(), rels, 0, nil); err != nil {
		b.Fatal(err)
	}
	return s
}

// benchChecks returns n checks of random accounts and users, the kind a
// decision asks for (one with caveat context).
func benchChecks(rng *rand.Rand, n int) []Check {
	perms := []string{"manage", "pay", "view"}
	out := make([]Check, n)
	for i := range out {
		out[i] = Check{
			Resource:   account(fmt.Sprintf("acc%d", rng.IntN(benchAccounts))),
			Permission: perms[rng.IntN(len(perms))],
			Subject:    user(fmt.Sprintf("u%d", rng.IntN(benchUsers))),
		}
		if i == 1 {
			out[i].Permission = "pay"
			out[i].Context = map[string]any{"amount": rng.IntN(200)}
		}
	}
	return out
}

// BenchmarkCheckBulk measures one CheckBulk of 1 or 8 items:
//   - spicedb-random: fact cache off, new random checks every time, out of
//     600,000 (SpiceDB computes them, rarely from its dispatch cache);
//   - spicedb-repeat: fact cache off, the same checks (a round trip to
//     SpiceDB, answered from its dispatch cache);
//   - cached: fact cache on, the same checks (no round trip).
//
// The random checks are new in every run: with -count, sub-benchmarks run
// again on the same stores, and the checks of the run before would be
// answered from SpiceDB's dispatch cache.
func BenchmarkCheckBulk(b *testing.B) {
	seed := uint64(time.Now().UnixNano())
	var runs atomic.Uint64
	for _, m := range []mode{modes[0], modes[1]} {
		b.Run(m.name, func(b *testing.B) {
			raw := benchStore(b, m, Config{CacheSize: -1})
			cached := benchStore(b, m, Config{})
			for _, n := range []int{1, 8} {
				b.Run(fmt.Sprintf("items=%d/spicedb-random", n), func(b *testing.B) {
					rng := rand.New(rand.NewPCG(seed, runs.Add(1)))
					b.ReportAllocs()
					for b.Loop() {
						if _, err := raw.CheckBulk(context.Background(), benchChecks(rng, n)); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run(fmt.Sprintf("items=%d/spicedb-repeat", n), func(b *testing.B) {
					checks := benchChecks(rand.New(rand.NewPCG(2, uint64(n))), n)
					b.ReportAllocs()
					for b.Loop() {
						if _, err := raw.CheckBulk(context.Background(), checks); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run(fmt.Sprintf("items=%d/cached", n), func(b *testing.B) {
					checks := benchChecks(rand.New(rand.NewPCG(3, uint64(n))), n)
					if _, err := cached.CheckBulk(context.Background(), checks); err != nil {
						b.Fatal(err)
					}
					before := cached.Cache().Stats()
					b.ReportAllocs()
					for b.Loop() {
						if _, err := cached.CheckBulk(context.Background(), checks); err != nil {
							b.Fatal(err)
						}
					}
					after := cached.Cache().Stats()
					b.ReportMetric(float64(after.Hits-before.Hits)/float64(after.Hits-before.Hits+after.Misses-before.Misses), "hit-ratio")
				})
			}
			// A bulk call of one check beside CheckPermission, alternately,
			// so that both see the same load: a bulk call of one check goes
			// through CheckPermission, and should cost the same.
			b.Run("items=1/interleaved-with-CheckPermission", func(b *testing.B) {
				rng := rand.New(rand.NewPCG(seed, runs.Add(1)))
				var bulk, single []time.Duration
				i := 0
				for b.Loop() {
					c := benchChecks(rng, 1)
					start := time.Now()
					var err error
					if i%2 == 0 {
						_, err = raw.CheckBulk(context.Background(), c)
						bulk = append(bulk, time.Since(start))
					} else {
						_, _, err = raw.CheckPermission(context.Background(), c[0])
						single = append(single, time.Since(start))
					}
					if err != nil {
						b.Fatal(err)
					}
					i++
				}
				slices.Sort(bulk)
				slices.Sort(single)
				if len(bulk) > 0 && len(single) > 0 {
					pb, ps := bulk[len(bulk)/2], single[len(single)/2]
					b.ReportMetric(float64(pb.Nanoseconds()), "bulk1-p50-ns")
					b.ReportMetric(float64(ps.Nanoseconds()), "CheckPermission-p50-ns")
					b.ReportMetric(100*(float64(pb)/float64(ps)-1), "extra-%")
				}
			})
			// The single-check API, for comparison with items=1.
			b.Run("CheckPermission/random", func(b *testing.B) {
				rng := rand.New(rand.NewPCG(seed, runs.Add(1)))
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := raw.CheckPermission(context.Background(), benchChecks(rng, 1)[0]); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// TestSingleCheckAnswersAsBulk: a call of one check goes through
// CheckPermission (the fast path the benchmarks measure), and answers what
// the same check inside a bulk call answers: HAS, NO, CONDITIONAL with the
// same missing context, a revision, the same item errors.
func TestSingleCheckAnswersAsBulk(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		s := m.open(t, Config{CacheSize: -1}).Store
		ctx := context.Background()
		acc := account("d1")
		mustWrite(t, s, touch(
			rel(acc, "owner", user("alice")),
			Relationship{Resource: acc, Relation: "delegate", Subject: user("bob"), Caveat: "within_limit", CaveatContext: map[string]any{"limit": 100}},
			Relationship{Resource: acc, Relation: "delegate", Subject: user("carl"), Caveat: "valid",
				CaveatContext: map[string]any{"valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"}},
			rel(Object{Type: "group", ID: "g"}, "member", user("dana")),
			Relationship{Resource: acc, Relation: "viewer", Subject: Object{Type: "group", ID: "g"}, SubjectRelation: "member"},
		))
		checks := []Check{
			{Resource: acc, Permission: "manage", Subject: user("alice")},
			{Resource: acc, Permission: "pay", Subject: user("bob"), Context: map[string]any{"amount": 50}},
			{Resource: acc, Permission: "pay", Subject: user("bob"), Context: map[string]any{"amount": 500}},
			{Resource: acc, Permission: "pay", Subject: user("bob")},
			{Resource: acc, Permission: "pay", Subject: user("carl"), Context: map[string]any{"now": "2027-06-01T00:00:00Z"}},
			{Resource: acc, Permission: "pay", Subject: user("carl")},
			{Resource: acc, Permission: "view", Subject: user("dana")},
			{Resource: acc, Permission: "view", Subject: Object{Type: "group", ID: "g"}, SubjectRelation: "member"},
			{Resource: acc, Permission: "view", Subject: user("eve")},
		}
		want := []string{"HAS", "HAS", "NO", "CONDITIONAL[amount]", "HAS", "CONDITIONAL[now]", "HAS", "HAS", "NO"}
		other := Check{Resource: acc, Permission: "manage", Subject: user("zoe")}
		at := Consistency{AtLeast: s.Floor()}
		for i, c := range checks {
			one, err := s.raw.CheckBulkAt(ctx, []Check{c}, at)
			if err != nil {
				t.Fatalf("%s alone: %v", c, err)
			}
			bulk, err := s.raw.CheckBulkAt(ctx, []Check{c, other}, at)
			if err != nil {
				t.Fatalf("%s in bulk: %v", c, err)
			}
			if got, inBulk := outcome(one.Items[0]), outcome(bulk.Items[0]); got != want[i] || inBulk != want[i] {
				t.Errorf("%s: alone %s, in bulk %s, want %s", c, got, inBulk, want[i])
			}
			if one.Revision == "" || one.Items[0].Check.String() != c.String() {
				t.Errorf("%s alone: revision %q, check %s", c, one.Revision, one.Items[0].Check)
			}
			exact, err := s.raw.CheckBulkAt(ctx, []Check{c}, Consistency{Exact: bulk.Revision})
			if err != nil || outcome(exact.Items[0]) != want[i] {
				t.Errorf("%s alone at the exact revision: %v %v", c, exact.Items, err)
			}
		}
		bogus := Check{Resource: acc, Permission: "bogus", Subject: user("alice")}
		for _, batch := range [][]Check{{bogus}, {bogus, other}} {
			if _, err := s.raw.CheckBulkAt(ctx, batch, at); !errors.Is(err, ErrCheckItem) || !strings.Contains(err.Error(), "bogus") {
				t.Errorf("%d check(s) with an unknown permission: %v, want ErrCheckItem naming it", len(batch), err)
			}
		}
	})
}
