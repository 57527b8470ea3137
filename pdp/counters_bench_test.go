package pdp_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ciampdp/pdp/pdp"
)

// BenchmarkVelocityDenied: a denied decision that a velocity rule counts
// (login from one of 1000 IPs, two distinct subjects each: below the
// threshold, so every decision is counted and none is blocked).
func BenchmarkVelocityDenied(b *testing.B) {
	f := newRiskFixture(b)
	reqs := make([]pdp.Request, 2000)
	for i := range reqs {
		reqs[i] = riskReq(fmt.Sprintf("u%d", i%2), "login", map[string]any{"ip": fmt.Sprintf("198.51.100.%d/%d", i%250, i/500)})
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d, err := f.engine.Decide(ctx, reqs[i%len(reqs)])
		if err != nil || d.Allowed {
			b.Fatalf("%v %+v", err, d)
		}
		i++
	}
}

// BenchmarkStepUpReport: a reported step-up outcome counted (1000
// subjects, each reporting failed, failed, succeeded in turn: below the
// count, so no hold begins).
func BenchmarkStepUpReport(b *testing.B) {
	f := newStepUpFixture(b)
	outcomes := []string{pdp.StepUpFailed, pdp.StepUpFailed, pdp.StepUpSucceeded}
	reqs := make([]pdp.Request, 3000)
	for i := range reqs {
		reqs[i] = stepUpReport(fmt.Sprintf("u%d", i%1000), "app-a", outcomes[i/1000])
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d, err := f.engine.Decide(ctx, reqs[i%len(reqs)])
		if err != nil || !d.Allowed {
			b.Fatalf("%v %+v", err, d)
		}
		i++
	}
}

// BenchmarkStepUpHeldPayment: the payment of a subject a failed step-up
// rule holds (allowed only with a step-up): the read of the counts.
func BenchmarkStepUpHeldPayment(b *testing.B) {
	f := newStepUpFixture(b)
	ctx := context.Background()
	for range 3 {
		if _, err := f.engine.Decide(ctx, stepUpReport("mallory", "app-a", pdp.StepUpFailed)); err != nil {
			b.Fatal(err)
		}
	}
	req := stepUpAsk("mallory", "pay")
	b.ReportAllocs()
	for b.Loop() {
		d, err := f.engine.Decide(ctx, req)
		if err != nil || len(d.Obligations) != 1 {
			b.Fatalf("%v %+v", err, d)
		}
	}
}
