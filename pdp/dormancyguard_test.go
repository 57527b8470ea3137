package pdp_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/reason"
	"github.com/ciampdp/pdp/pdp/revalidation"
	"github.com/ciampdp/pdp/pdp/sources"
)

const dormSchema = `
entity User;
@data_subject("self")
entity Account;
action view appliesTo { principal: [User], resource: [Account], context: { purpose?: String } };
action pay appliesTo { principal: [User], resource: [Account], context: { purpose?: String } };
`

// Policies permit everything: the guard, not the policies, must deny.
const dormPolicies = `@id("permit-all") permit (principal, action, resource);`

const dormPurposes = `
version: "t1"
purposes:
  service:
    version: 1
    applications: [bank]
    rules:
      "*": {basis: contract}
`

const dormRules = `
version: "t1"
identities:
  - id: idle-1y
    after: 365d
    step_up: [view]
    revalidate: [pay]
  - id: idle-2y
    after: 730d
    revalidate: ["*"]
`

var dormNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// dormancyEngine is an engine over a bundle with dormancy rules, the real
// consent ledger (file store) holding the activity seeded, and the real
// dormancy service (file store).
func dormancyEngine(t testing.TB, activity map[string]time.Time) (*pdp.Engine, *revalidation.Service, *policy.Bundle, *consent.Ledger) {
	t.Helper()
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema":  []byte(dormSchema),
		"schema/purposes.yaml":  []byte(dormPurposes),
		"schema/dormancy.yaml":  []byte(dormRules),
		"policies/p.cedar":      []byte(dormPolicies),
		"policies/ignored.yaml": []byte("x"),
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := consent.OpenFile(filepath.Join(dir, "c.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	clock := func() time.Time { return dormNow }
	ledger, err := consent.NewLedger(consent.LedgerConfig{Store: st, Registry: b.Purposes,
		SigningKey: ed25519.NewKeyFromSeed(make([]byte, 32)), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ledger.Close() })
	if err := ledger.ImportActivity(context.Background(), activity); err != nil {
		t.Fatal(err)
	}
	rs, err := revalidation.OpenFile(filepath.Join(dir, "r.jsonl"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	svc, err := revalidation.NewService(context.Background(), revalidation.Config{Store: rs, Activity: revalidation.LedgerActivity{Ledger: ledger}, Now: clock, AdminApplications: []string{"backoffice"}})
	if err != nil {
		t.Fatal(err)
	}
	e := pdp.NewEngine(pdp.Components{Bundles: b, Consent: sources.Consent{Ledger: ledger}, Dormancy: svc, Now: clock})
	return e, svc, b, ledger
}

func dormReq(user, action string) pdp.Request {
	return pdp.Request{Application: "bank", Subject: pdp.Entity{Type: "User", ID: user}, Action: pdp.Action{Name: action},
		Resource: pdp.Entity{Type: "Account", ID: "acc-" + user}, Context: map[string]any{"purpose": "service"}}
}

// TestDormancyGuard: the guard overrides permit-all for a dormant
// principal, steps up a low-risk action, leaves the active and the
// never-seen alone, and a revalidation ends it (named once, by the next
// decision); every decision replays to the same answer.
func TestDormancyGuard(t *testing.T) {
	e, svc, b, ledger := dormancyEngine(t, map[string]time.Time{
		"user:active":  dormNow.Add(-24 * time.Hour),
		"user:idle18m": dormNow.AddDate(0, -18, 0),
		"user:heidi":   time.Date(2023, 1, 10, 9, 0, 0, 0, time.UTC),
	})
	ctx := context.Background()
	rp := pdp.NewReplayer()
	decide := func(user, action string) pdp.Decision {
		t.Helper()
		req := dormReq(user, action)
		d, err := e.Decide(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		// The record, as the trail keeps it, replays to the same answer.
		raw, _ := json.Marshal(d)
		var rec pdp.Decision
		if err := json.Unmarshal(raw, &rec); err != nil {
			t.Fatal(err)
		}
		if r := rp.Replay(b, req, rec, pdp.ReplayOptions{}); r.Outcome != pdp.Reproduced {
			t.Fatalf("%s %s: replay %s %v %v", user, action, r.Outcome, r.Differences, r.Missing)
		}
		return d
	}
	for _, c := range []struct {
		user, action string
		allowed      bool
		reasons      []string
		obligations  []string
		rule         string
	}{
		{"active", "pay", true, []string{}, []string{}, ""},
		{"nobody-seen", "pay", true, []string{}, []string{}, ""},
		{"idle18m", "view", true, []string{}, []string{dormancy.ObligationStepUp}, "idle-1y"},
		{"idle18m", "pay", false, []string{reason.RevalidationRequired}, []string{dormancy.ObligationRevalidation}, "idle-1y"},
		{"heidi", "view", false, []string{reason.RevalidationRequired}, []string{dormancy.ObligationRevalidation}, "idle-2y"},
	} {
		d := decide(c.user, c.action)
		if d.Allowed != c.allowed || !slices.Equal(d.Reasons, c.reasons) || !slices.Equal(d.Obligations, c.obligations) {
			t.Fatalf("%s %s: %v %v %v, want %v %v %v", c.user, c.action, d.Allowed, d.Reasons, d.Obligations, c.allowed, c.reasons, c.obligations)
		}
		if c.rule == "" {
			if len(d.Dormancy) != 0 {
				t.Fatalf("%s %s: findings %+v", c.user, c.action, d.Dormancy)
			}
			continue
		}
		if len(d.Dormancy) != 1 || d.Dormancy[0].Rule != c.rule || d.Dormancy[0].LastActivity.IsZero() {
			t.Fatalf("%s %s: findings %+v", c.user, c.action, d.Dormancy)
		}
	}
	// Denied decisions are no activity: heidi is still dormant.
	if d := decide("heidi", "view"); d.Allowed {
		t.Fatal("a denied decision ended the dormancy")
	}
	if _, err := svc.RevalidateIdentity(ctx, revalidation.RevalidateRequest{Subject: dormancy.Ref{Type: "user", ID: "heidi"},
		By: dormancy.Actor{Application: "crm", Subject: dormancy.Ref{Type: "staff", ID: "kim"}}}); err == nil {
		t.Fatal("an application that is no dormancy admin revalidated")
	}
	rv, err := svc.RevalidateIdentity(ctx, revalidation.RevalidateRequest{Subject: dormancy.Ref{Type: "user", ID: "heidi"},
		By: dormancy.Actor{Application: "backoffice", Subject: dormancy.Ref{Type: "staff", ID: "kim"}}})
	if err != nil {
		t.Fatal(err)
	}
	// The clock stands still in this test: a revalidation at the decision's
	// own instant counts.
	d := decide("heidi", "view")
	if !d.Allowed || len(d.Dormancy) != 1 || d.Dormancy[0].Effect != dormancy.EffectRevalidated || d.Dormancy[0].Revalidation.ID != rv.ID {
		t.Fatalf("after revalidation: %v %v %+v", d.Allowed, d.Reasons, d.Dormancy)
	}
	if d := decide("heidi", "pay"); !d.Allowed || len(d.Dormancy) != 0 {
		t.Fatalf("the allowed decision is activity: %v %+v", d.Allowed, d.Dormancy)
	}
	// The allowed decisions are activity as principal and as data subject
	// (the account is its own data subject here); the step-up allow and the
	// denies are not.
	snap, err := ledger.ActivitySnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[consent.Ref]bool{
		{Type: "user", ID: "active"}: true, {Type: "account#subject", ID: "acc-active"}: true,
		{Type: "account#subject", ID: "acc-heidi"}: true, {Type: "account#subject", ID: "acc-idle18m"}: false,
	} {
		if got := snap[ref].Equal(dormNow); got != want {
			t.Errorf("activity of %s now: %v, want %v", ref, got, want)
		}
	}
}

// TestDormancyGuardFailsClosed: rules without an activity record deny
// what they cover (facts_unavailable); a principal type they do not cover
// is decided as usual.
func TestDormancyGuardFailsClosed(t *testing.T) {
	_, _, b, ledger := dormancyEngine(t, nil)
	e := pdp.NewEngine(pdp.Components{Bundles: b, Consent: sources.Consent{Ledger: ledger}, Now: func() time.Time { return dormNow }})
	d, err := e.Decide(context.Background(), dormReq("alice", "view"))
	if err != nil || d.Allowed || !slices.Equal(d.Reasons, []string{reason.FactsUnavailable}) {
		t.Fatalf("%v %v %v", err, d.Allowed, d.Reasons)
	}
}

// BenchmarkDormancyGuard measures what the dormancy guard adds to a
// decision: the same allowed decision (10,000 principals with activity)
// on a bundle without rules and with them; p50 of each.
func BenchmarkDormancyGuard(b *testing.B) {
	const users = 10_000
	act := make(map[string]time.Time, users)
	for i := range users {
		act[fmt.Sprintf("user:u%d", i)] = dormNow.Add(-time.Duration(i) * time.Minute)
	}
	withRules, _, bundle, ledger := dormancyEngine(b, act)
	files := map[string][]byte{"schema/s.cedarschema": []byte(dormSchema), "schema/purposes.yaml": []byte(dormPurposes), "policies/p.cedar": []byte(dormPolicies)}
	bare, err := policy.LoadFiles(files)
	if err != nil {
		b.Fatal(err)
	}
	_ = bundle
	clock := func() time.Time { return dormNow }
	noRules := pdp.NewEngine(pdp.Components{Bundles: bare, Consent: sources.Consent{Ledger: ledger}, Now: clock})
	ctx := context.Background()
	for _, c := range []struct {
		name string
		e    *pdp.Engine
	}{{"no-rules", noRules}, {"rules", withRules}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var lat []time.Duration
			i := 0
			for b.Loop() {
				req := pdp.Request{Application: "bank", Subject: pdp.Entity{Type: "User", ID: fmt.Sprintf("u%d", i%users)}, Action: pdp.Action{Name: "view"},
					Resource: pdp.Entity{Type: "Account", ID: "a"}, Context: map[string]any{"purpose": "service"}}
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
