package recorder

import (
	"context"
	"errors"
	"testing"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
)

// erringReserver is the engine behind a wrapper that returns the
// decisions and their Pending with an error (the Reserver contract lets
// it): the recorder must drop what they reserved.
type erringReserver struct {
	*pdp.Engine
	err error
}

func (e erringReserver) DecideReserved(ctx context.Context, req pdp.Request) (pdp.Decision, *pdp.Pending, error) {
	d, p, _ := e.Engine.DecideReserved(ctx, req)
	return d, p, e.err
}

func (e erringReserver) DecideBatchReserved(ctx context.Context, reqs []pdp.Request) ([]pdp.Decision, *pdp.Pending, error) {
	ds, p, _ := e.Engine.DecideBatchReserved(ctx, reqs)
	return ds, p, e.err
}

var _ pdp.Reserver = erringReserver{}

// TestRecorderSettlesOnError: when the wrapped Reserver returns an error
// with a Pending, Decide (like DecideBatch) drops its changes: a denial
// no record explains does not count towards the velocity block, and does
// not hold back the commits of its key for good.
func TestRecorderSettlesOnError(t *testing.T) {
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema": []byte(countedSchema),
		"policies/p.cedar":     []byte(countedPolicies),
		"schema/signals.yaml":  []byte(countedRegistry),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, batch := range []bool{false, true} {
		name := map[bool]string{false: "Decide", true: "DecideBatch"}[batch]
		t.Run(name, func(t *testing.T) {
			e := pdp.NewEngine(pdp.Components{Bundles: fixedBundle{b}, Velocity: &pdp.Velocity{}})
			wrapped := erringReserver{Engine: e, err: errors.New("wrapper failed")}
			bad, err := NewRecorder(wrapped, &flakyLog{}, RecorderOptions{Mode: ModeSync})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = bad.Close() })
			good, err := NewRecorder(e, &flakyLog{}, RecorderOptions{Mode: ModeSync})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = good.Close() })
			f := &countedFixture{r: good}
			const ip = "203.0.113.9"
			if batch {
				_, err = bad.DecideBatch(context.Background(), []pdp.Request{countedLogin("u1", ip)})
			} else {
				_, err = bad.Decide(context.Background(), countedLogin("u1", ip))
			}
			if err == nil {
				t.Fatal("the wrapper's error is lost")
			}
			f.want(t, countedLogin("u2", ip), false, []string{"not_permitted"}, nil)
			f.want(t, countedLogin("u3", ip), false, []string{"not_permitted"}, nil)
			// u1's denial is not counted: two subjects, no block.
			f.want(t, countedPay("erin", ip), true, nil, nil)
			f.want(t, countedLogin("u4", ip), false, []string{"not_permitted"}, nil)
			f.want(t, countedPay("erin", ip), false, []string{"risk_velocity"}, nil)
		})
	}
}
