package pdp_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
)

const guardSchema = `
entity App;
@data_subject("self")
entity User { jurisdiction?: String, birth_date?: datetime };
action contact appliesTo { principal: [App], resource: [User], context: {
  purpose?: String, consent: { allowed: Bool, status: String, basis: String, grant: String } } };
action serve appliesTo { principal: [App], resource: [User], context: { purpose?: String } };
`

// Policies permit everything: the guard, not the policies, must deny.
const guardPolicies = `
@id("permit-all") permit (principal, action, resource);
@id("policy-sees-consent") forbid (principal, action == Action::"contact", resource)
  when { context.consent.status == "opt_out_default" && resource has jurisdiction && resource.jurisdiction == "XX" };
`

const guardPurposes = `
version: "t1"
purposes:
  marketing:
    version: 1
    applications: [crm]
    rules:
      "*": {basis: consent, default: opt_in}
  service:
    version: 1
    applications: [crm]
    rules:
      "*": {basis: contract}
`

// ledgerFake answers consent checks from a table (the real ledger is
// tested in pdp/consent and end to end) and records activity.
type ledgerFake struct {
	answers map[string]pdp.ConsentFact
	fail    error
	last    pdp.ConsentQuery
	touched []string
}

func (l *ledgerFake) CheckConsents(ctx context.Context, qs []pdp.ConsentQuery) ([]pdp.ConsentFact, error) {
	out := make([]pdp.ConsentFact, len(qs))
	for i, q := range qs {
		f, err := l.check(ctx, q)
		if err != nil {
			return nil, err
		}
		out[i] = f
	}
	return out, nil
}

func (l *ledgerFake) check(_ context.Context, q pdp.ConsentQuery) (pdp.ConsentFact, error) {
	l.last = q
	if l.fail != nil {
		return pdp.ConsentFact{}, l.fail
	}
	if f, ok := l.answers[q.Subject.ID]; ok {
		return f, nil
	}
	return pdp.ConsentFact{Status: "consent_missing", Reason: "consent_missing", Basis: "consent", Position: 7}, nil
}

func (l *ledgerFake) Touch(s pdp.ObjectRef, _ time.Time) { l.touched = append(l.touched, s.String()) }

func TestConsentGuard(t *testing.T) {
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema":   []byte(guardSchema),
		"schema/purposes.yaml":   []byte(guardPurposes),
		"policies/p.cedar":       []byte(guardPolicies),
		"policies/entities.json": []byte(`[{"uid":{"type":"User","id":"ann"},"attrs":{"jurisdiction":"DE","birth_date":{"__extn":{"fn":"datetime","arg":"2012-01-02"}}},"parents":[]}]`),
	})
	if err != nil {
		t.Fatal(err)
	}
	led := &ledgerFake{answers: map[string]pdp.ConsentFact{
		"ann": {Allowed: true, Status: "granted", Basis: "consent", GrantID: "g1", Position: 9},
		"bo":  {Status: "consent_withdrawn", Reason: "consent_withdrawn", Basis: "consent", GrantID: "g2", Position: 9},
	}}
	e := pdp.NewEngine(pdp.Components{Bundles: b, Consent: led})
	ask := func(app, action, user string, ctx map[string]any) pdp.Decision {
		d, err := e.Decide(context.Background(), pdp.Request{Application: app,
			Subject: pdp.Entity{Type: "App", ID: app}, Action: pdp.Action{Name: action},
			Resource: pdp.Entity{Type: "User", ID: user}, Context: ctx})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	mk := map[string]any{"purpose": "marketing"}
	tests := []struct {
		name    string
		d       pdp.Decision
		allowed bool
		reasons []string
	}{
		{"a valid grant", ask("crm", "contact", "ann", mk), true, []string{}},
		{"a withdrawn grant overrides a permitting policy", ask("crm", "contact", "bo", mk), false, []string{"consent_withdrawn"}},
		{"no grant", ask("crm", "contact", "cy", mk), false, []string{"consent_missing"}},
		{"no purpose", ask("crm", "contact", "ann", nil), false, []string{"purpose_not_allowed"}},
		{"an unknown purpose", ask("crm", "contact", "ann", map[string]any{"purpose": "telepathy"}), false, []string{"purpose_not_allowed"}},
		{"an application that may not process for it", ask("web", "contact", "ann", mk), false, []string{"purpose_not_allowed"}},
		{"contract basis: no ledger needed", ask("crm", "serve", "bo", map[string]any{"purpose": "service"}), true, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.d.Allowed != tc.allowed || !slices.Equal(tc.d.Reasons, tc.reasons) {
				t.Fatalf("got %v %v (%s), want %v %v", tc.d.Allowed, tc.d.Reasons, tc.d.Message, tc.allowed, tc.reasons)
			}
		})
	}
	t.Run("the record names the grant, the position and the basis", func(t *testing.T) {
		d := ask("crm", "contact", "ann", mk)
		if c := d.Consent; c == nil || c.GrantID != "g1" || c.Position != 9 || c.Subject.String() != "user:ann" || c.Purpose != "marketing" {
			t.Fatalf("consent fact %+v", d.Consent)
		}
		if led.last.Jurisdiction != "DE" || led.last.BirthDate == nil || led.last.BirthDate.Year() != 2012 || led.last.Application != "crm" {
			t.Fatalf("query %+v", led.last)
		}
		d = ask("crm", "serve", "bo", map[string]any{"purpose": "service"})
		if c := d.Consent; c == nil || c.Basis != "contract" || c.Status != "not_required" {
			t.Fatalf("contract basis recorded as %+v", d.Consent)
		}
	})
	t.Run("the consent facts reach Cedar", func(t *testing.T) {
		v, ok := ask("crm", "contact", "ann", mk).Input.Context.Get("consent")
		if !ok || v.String() == "" {
			t.Fatal("context.consent missing from the recorded input")
		}
	})
	t.Run("allowed decisions record the principal's activity", func(t *testing.T) {
		led.touched = nil
		ask("crm", "contact", "ann", mk)
		ask("crm", "contact", "bo", mk)
		if !slices.Equal(led.touched, []string{"app:crm"}) {
			t.Fatalf("touched %v", led.touched)
		}
	})
	t.Run("ledger unreachable: fail closed", func(t *testing.T) {
		led.fail = errors.New("disk gone")
		defer func() { led.fail = nil }()
		if d := ask("crm", "contact", "ann", mk); d.Allowed || !slices.Equal(d.Reasons, []string{pdp.ReasonFactsUnavailable}) {
			t.Fatalf("got %v %v", d.Allowed, d.Reasons)
		}
	})
	t.Run("no ledger configured: fail closed", func(t *testing.T) {
		e := pdp.NewEngine(pdp.Components{Bundles: b})
		d, _ := e.Decide(context.Background(), pdp.Request{Application: "crm", Subject: pdp.Entity{Type: "App", ID: "crm"},
			Action: pdp.Action{Name: "contact"}, Resource: pdp.Entity{Type: "User", ID: "ann"}, Context: mk})
		if d.Allowed || !slices.Equal(d.Reasons, []string{pdp.ReasonFactsUnavailable}) {
			t.Fatalf("got %v %v", d.Allowed, d.Reasons)
		}
	})
}
