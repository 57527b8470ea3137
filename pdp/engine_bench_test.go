package pdp_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/internal/policygen"
	"github.com/ciampdp/pdp/pdp/policy"
)

func benchBundle(b *testing.B, n int) (*policy.Bundle, []string, policygen.Params) {
	b.Helper()
	p := policygen.Params{Seed: 1, Policies: n, Users: n/10 + 10, Groups: n/100 + 5, Docs: n/10 + 10,
		Folders: n/100 + 3, ExtraActions: 15, WildcardPercent: 0}
	files, actions := policygen.Bundle(p)
	bundle, err := policy.LoadFiles(files)
	if err != nil {
		b.Fatal(err)
	}
	return bundle, actions, p
}

// BenchmarkDecide measures one decision through the engine at 10, 1,000 and
// 10,000 policies, with policy slicing (the default) and without.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		bundle, actions, p := benchBundle(b, n)
		for _, mode := range []string{"sliced", "unsliced"} {
			b.Run(fmt.Sprintf("policies=%d/%s", n, mode), func(b *testing.B) {
				e := pdp.NewEngine(pdp.Components{Bundles: bundle, Unsliced: mode == "unsliced"})
				r := rand.New(rand.NewPCG(2, 3))
				reqs := make([]pdp.Request, 256)
				for i := range reqs {
					reqs[i] = pdp.Request{
						Subject:  pdp.Entity{Type: "User", ID: fmt.Sprintf("u%d", r.IntN(p.Users))},
						Action:   pdp.Action{Name: actions[r.IntN(len(actions))]},
						Resource: pdp.Entity{Type: "Doc", ID: fmt.Sprintf("d%d", r.IntN(p.Docs))},
						Context:  map[string]any{"hour": 10},
					}
				}
				ctx := context.Background()
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := e.Decide(ctx, reqs[i%len(reqs)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
