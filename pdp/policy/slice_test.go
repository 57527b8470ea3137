package policy_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/ciampdp/pdp/pdp/internal/policygen"
	"github.com/ciampdp/pdp/pdp/policy"
)

// TestSlicingMatchesFullEvaluation is the differential test of policy
// slicing: over generated bundles with every scope form (==, in, is, is-in,
// action groups and sets, unconstrained) and conditions that error, the
// sliced evaluation must give the decision, reasons and errors of the
// unsliced one for every request.
func TestSlicingMatchesFullEvaluation(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	for seed := range seeds {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			params := policygen.Params{Seed: uint64(seed), Policies: 60 + seed*5, Users: 12, Groups: 5,
				Docs: 12, Folders: 4, ExtraActions: seed % 3, WildcardPercent: 10}
			files, actions := policygen.Bundle(params)
			b, err := policy.LoadFiles(files)
			if err != nil {
				t.Fatalf("generated bundle does not load: %v", err)
			}
			r := rand.New(rand.NewPCG(uint64(seed), 7))
			checked, applicable := 0, 0
			for range 400 {
				// Include principals and resources the bundle does not know.
				p := types.NewEntityUID("User", types.String(fmt.Sprintf("u%d", r.IntN(params.Users+2))))
				res := types.NewEntityUID("Doc", types.String(fmt.Sprintf("d%d", r.IntN(params.Docs+2))))
				a := types.NewEntityUID("Action", types.String(actions[r.IntN(len(actions))]))
				ctx := types.NewRecord(types.RecordMap{})
				if r.IntN(2) == 0 {
					ctx = types.NewRecord(types.RecordMap{"hour": types.Long(r.IntN(24))})
				}
				entities := b.Entities().Clone()
				for _, uid := range []types.EntityUID{p, res} {
					if _, ok := entities[uid]; !ok {
						attrs := types.RecordMap{"level": types.Long(r.IntN(10)), "name": types.String("x")}
						if uid.Type == "Doc" {
							attrs = types.RecordMap{"owner": p, "level": types.Long(1), "public": types.True}
						}
						entities[uid] = types.Entity{UID: uid, Attributes: types.NewRecord(attrs)}
					}
				}
				req := cedar.Request{Principal: p, Action: a, Resource: res, Context: ctx}
				fullDec, fullDiag := cedar.Authorize(b.PolicySet(), entities, req)
				slice := b.Candidates(p, a, res, b.Ancestors(p), b.Ancestors(res))
				sliceDec, sliceDiag := cedar.Authorize(slice, entities, req)
				if fullDec != sliceDec || !slices.Equal(ids(fullDiag.Reasons), ids(sliceDiag.Reasons)) ||
					!slices.Equal(errs(fullDiag.Errors), errs(sliceDiag.Errors)) {
					t.Fatalf("request %v %v %v: full=%v %v %v, sliced=%v %v %v (%d candidates)", p, a, res,
						fullDec, ids(fullDiag.Reasons), errs(fullDiag.Errors),
						sliceDec, ids(sliceDiag.Reasons), errs(sliceDiag.Errors), slice.Len())
				}
				checked++
				if len(fullDiag.Reasons)+len(fullDiag.Errors) > 0 {
					applicable++
				}
			}
			if applicable == 0 {
				t.Fatalf("no request matched any policy in %d checks: the generator is too sparse to prove anything", checked)
			}
		})
	}
}

func ids(rs []types.DiagnosticReason) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, string(r.PolicyID))
	}
	slices.Sort(out)
	return out
}

func errs(es []types.DiagnosticError) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, string(e.PolicyID)+": "+e.Message)
	}
	slices.Sort(out)
	return out
}
