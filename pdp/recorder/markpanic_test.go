package recorder

import (
	"context"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/policy"
)

// panickyDormancy is a dormancy source (the edge the engine marks
// activity in) whose marks of alice panic.
type panickyDormancy struct{}

func (panickyDormancy) States(_ context.Context, qs []dormancy.Query) ([]dormancy.State, error) {
	return make([]dormancy.State, len(qs)), nil
}

func (panickyDormancy) TouchDecision(principal, _ dormancy.Ref, _ []string, _ time.Time) {
	if principal.ID == "alice" {
		panic("touch failed")
	}
}

// TestRecordedCountsSurviveAPanickingMark: with the trail on, a batch
// whose first item's activity mark panics (alice's allowed payment)
// still answers, and the failed step-up its second item reported, whose
// record was written, stays counted: the third such batch holds
// mallory's payments.
func TestRecordedCountsSurviveAPanickingMark(t *testing.T) {
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema": []byte(countedSchema),
		"policies/p.cedar":     []byte(countedPolicies),
		"schema/signals.yaml":  []byte(countedRegistry),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{ModeSync, ModeAsync} {
		t.Run(mode, func(t *testing.T) {
			e := pdp.NewEngine(pdp.Components{Bundles: fixedBundle{b}, Velocity: &pdp.Velocity{}, Dormancy: panickyDormancy{}})
			r, err := NewRecorder(e, &flakyLog{}, RecorderOptions{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			f := &countedFixture{r: r}
			for i := range 3 {
				var ds []pdp.Decision
				func() {
					defer func() {
						if v := recover(); v != nil {
							t.Fatalf("batch %d panicked: %v", i, v)
						}
					}()
					ds, err = r.DecideBatch(context.Background(), []pdp.Request{countedPay("alice", ""), countedReport("mallory", pdp.StepUpFailed)})
				}()
				if err != nil || len(ds) != 2 || !ds[0].Allowed || !ds[1].Allowed {
					t.Fatalf("batch %d: %v %+v", i, err, ds)
				}
			}
			f.want(t, countedPay("mallory", ""), true, nil, withStepUp)
		})
	}
}
