package pdp_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
)

// BenchmarkRiskGuard: one decision (view, allowed) by a bundle without a
// signals registry, by one with a registry for a subject without signals,
// and for a subject with 10 signals in force (view allowed with step-up
// authentication, every signal named in the record); p50
// and p99 of each. The risk guard's share of a decision is the difference
// to no-registry.
func BenchmarkRiskGuard(b *testing.B) {
	bare, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema":   []byte(riskSchema),
		"policies/p.cedar":       []byte(riskPolicies),
		"policies/entities.json": []byte(`[]`),
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		signals int
		bare    bool
	}{{"no-registry", 0, true}, {"no-signals", 0, false}, {"10-active-signals", 10, false}} {
		b.Run(tc.name, func(b *testing.B) {
			f := newRiskFixture(b)
			for range tc.signals {
				f.push(b, "credential-compromise", "bob", "")
				f.now = f.now.Add(time.Minute)
			}
			e := f.engine
			if tc.bare {
				now := f.now
				e = pdp.NewEngine(pdp.Components{Bundles: bare, Now: func() time.Time { return now }})
			}
			req := riskReq("bob", "view", map[string]any{})
			ctx := context.Background()
			var lat []time.Duration
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				d, err := e.Decide(ctx, req)
				lat = append(lat, time.Since(t0))
				if err != nil || !d.Allowed {
					b.Fatalf("%v %v", err, d.Reasons)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		})
	}
}
