package relations

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
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
func BenchmarkCheckBulk(b *testing.B) {
	for _, m := range []mode{modes[0], modes[1]} {
		b.Run(m.name, func(b *testing.B) {
			raw := benchStore(b, m, Config{CacheSize: -1})
			cached := benchStore(b, m, Config{})
			for _, n := range []int{1, 8} {
				b.Run(fmt.Sprintf("items=%d/spicedb-random", n), func(b *testing.B) {
					rng := rand.New(rand.NewPCG(1, uint64(n)))
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
			// The single-check API, for comparison with items=1.
			b.Run("CheckPermission/random", func(b *testing.B) {
				rng := rand.New(rand.NewPCG(4, 4))
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
