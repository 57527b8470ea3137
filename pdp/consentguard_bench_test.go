package pdp_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/sources"
)

// BenchmarkConsentGuard measures what the consent guard adds to a
// decision: the same decision without a purposes registry, with a purpose
// on a contract basis (no ledger), and with a consent basis answered by the
// real ledger (file store, 10,000 subjects indexed in memory). It reports
// the p50 of each; the guard's share is the difference.
func BenchmarkConsentGuard(b *testing.B) {
	const subjects = 10_000
	files := map[string][]byte{
		"schema/s.cedarschema": []byte(guardSchema),
		"policies/p.cedar":     []byte(guardPolicies),
	}
	bare, err := policy.LoadFiles(files)
	if err != nil {
		b.Fatal(err)
	}
	files["schema/purposes.yaml"] = []byte(guardPurposes)
	withReg, err := policy.LoadFiles(files)
	if err != nil {
		b.Fatal(err)
	}
	st, err := consent.OpenFile(filepath.Join(b.TempDir(), "c.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	ledger, err := consent.NewLedger(consent.LedgerConfig{Store: st, Registry: withReg.Purposes,
		SigningKey: ed25519.NewKeyFromSeed(make([]byte, 32)), Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer ledger.Close()
	ctx := context.Background()
	events := make([]consent.Event, 0, subjects)
	for i := range subjects {
		u := consent.Ref{Type: "user", ID: fmt.Sprintf("u%d", i)}
		events = append(events, consent.Event{ID: fmt.Sprintf("e%d", i), Type: consent.EventGiven, GrantID: fmt.Sprintf("g%d", i),
			Subject: u, Actor: u, Application: "crm", Purpose: "marketing", PurposeVersion: 1, Applications: []string{"crm"},
			Jurisdiction: "DE", Notice: consent.Notice{URI: "n", Version: 1}, At: now.Add(-time.Hour), RecordedAt: now.Add(-time.Hour)})
	}
	if err := ledger.Import(ctx, events); err != nil {
		b.Fatal(err)
	}
	clock := func() time.Time { return now }
	cases := []struct {
		name    string
		e       *pdp.Engine
		purpose string
	}{
		{"no-registry", pdp.NewEngine(pdp.Components{Bundles: bare, Now: clock}), "marketing"},
		{"contract-basis", pdp.NewEngine(pdp.Components{Bundles: withReg, Consent: sources.Consent{Ledger: ledger}, Now: clock}), "service"},
		{"consent-basis", pdp.NewEngine(pdp.Components{Bundles: withReg, Consent: sources.Consent{Ledger: ledger}, Now: clock}), "marketing"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			action := "contact"
			if c.purpose == "service" {
				action = "serve"
			}
			var lat []time.Duration
			i := 0
			for b.Loop() {
				req := pdp.Request{Application: "crm", Subject: pdp.Entity{Type: "App", ID: "crm"}, Action: pdp.Action{Name: action},
					Resource: pdp.Entity{Type: "User", ID: fmt.Sprintf("u%d", i%subjects)}, Context: map[string]any{"purpose": c.purpose}}
				t0 := time.Now()
				d, err := c.e.Decide(ctx, req)
				lat = append(lat, time.Since(t0))
				if err != nil || !d.Allowed {
					b.Fatalf("%v %v %s", err, d.Reasons, d.Message)
				}
				i++
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		})
	}
}
