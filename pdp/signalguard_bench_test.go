package pdp_test

import (
	"context"
	"testing"
	"time"
)

// BenchmarkRiskGuard: a decision of a subject with no signal, and of one
// with 10 received signals (5 holding, 5 lifted): the difference is the
// risk guard's share of a decision.
func BenchmarkRiskGuard(b *testing.B) {
	for _, n := range []int{0, 10} {
		b.Run(map[int]string{0: "no-signals", 10: "10-signals"}[n], func(b *testing.B) {
			f := newRiskFixture(b)
			for i := range n / 2 {
				f.push(b, "credential-compromise", "bob", "")
				f.now = f.now.Add(time.Minute)
				if i < n/2-1 {
					f.push(b, "credential-change", "bob", "")
				} else {
					f.push(b, "session-revoked", "bob", "")
				}
				f.now = f.now.Add(time.Minute)
			}
			req := riskReq("bob", "view", map[string]any{})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.engine.Decide(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
