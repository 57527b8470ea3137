package dormancy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

func TestParseRules(t *testing.T) {
	for _, c := range []struct {
		name, in, err string
	}{
		{"empty", ``, ""},
		{"northbank", "identities:\n  - {id: a, after: 365d, step_up: [view], revalidate: [pay]}\n  - {id: b, after: 730d, revalidate: ['*']}\ndelegations:\n  - {id: p, basis: power_of_attorney, unused_after: 730d}\n", ""},
		{"unknown key", "identities:\n  - {id: a, after: 1d, revalidate: [x], deny: [y]}\n", "field deny not found"},
		{"no id", "identities:\n  - {after: 1d, revalidate: [x]}\n", "id is required"},
		{"same id twice", "identities:\n  - {id: a, after: 1d, revalidate: [x]}\ndelegations:\n  - {id: a, basis: b, unused_after: 1d}\n", "used twice"},
		{"bad duration", "identities:\n  - {id: a, after: soon, revalidate: [x]}\n", "want a number of days"},
		{"zero duration", "identities:\n  - {id: a, after: 0d, revalidate: [x]}\n", "must be positive"},
		{"negative", "identities:\n  - {id: a, after: -3h, revalidate: [x]}\n", "must be positive"},
		{"no action", "identities:\n  - {id: a, after: 1d}\n", "names no action"},
		{"both", "identities:\n  - {id: a, after: 1d, revalidate: [x], step_up: [x]}\n", "both revalidate and step_up"},
		{"no basis", "delegations:\n  - {id: a, unused_after: 1d}\n", "basis is required"},
		{"basis twice", "delegations:\n  - {id: a, basis: b, unused_after: 1d}\n  - {id: c, basis: b, unused_after: 2d}\n", "has a rule already"},
		{"not yaml", "identities: [", "dormancy rules"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRules([]byte(c.in))
			switch {
			case c.err == "" && err != nil:
				t.Fatal(err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrRules)):
				t.Fatalf("got %v, want %q", err, c.err)
			}
		})
	}
}

func TestRulesSelect(t *testing.T) {
	r, err := ParseRules([]byte(`
subject_types: [user]
identities:
  - {id: short, after: 365d, step_up: [view], revalidate: [pay]}
  - {id: long, after: 730d, revalidate: ["*"]}
delegations:
  - {id: any, basis: "*", unused_after: 100d}
  - {id: poa, basis: power_of_attorney, unused_after: 730d}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		action     string
		idle       time.Duration
		rule, eff  string
		applicable bool
	}{
		{"view", 100 * day, "", "", false},
		{"view", 400 * day, "short", EffectStepUp, true},
		{"pay", 400 * day, "short", EffectRevalidate, true},
		{"other", 400 * day, "", "", false},
		{"view", 800 * day, "long", EffectRevalidate, true},
		{"other", 800 * day, "long", EffectRevalidate, true},
		{"view", 365 * day, "", "", false}, // "longer than": the limit itself is not dormant
	} {
		ir, eff, ok := r.Identity(c.action, c.idle)
		if ok != c.applicable || ir.ID != c.rule || eff != c.eff {
			t.Errorf("%s after %v: %q %q %v, want %q %q %v", c.action, c.idle, ir.ID, eff, ok, c.rule, c.eff, c.applicable)
		}
	}
	if d, _ := r.Delegation("power_of_attorney"); d.ID != "poa" {
		t.Errorf("a specific basis wins over *: %s", d.ID)
	}
	if d, _ := r.Delegation("statutory_guardian"); d.ID != "any" {
		t.Errorf("* covers the others: %s", d.ID)
	}
	if r.Horizon() != 100*day || !r.AppliesTo("user") || r.AppliesTo("application") {
		t.Errorf("horizon %v", r.Horizon())
	}
	var none *Rules
	if _, _, ok := none.Identity("x", 1000*day); ok || none.Horizon() != 0 || none.AppliesTo("user") {
		t.Error("nil rules apply")
	}
}

func TestEvaluate(t *testing.T) {
	r, err := ParseRules([]byte(`
identities:
  - {id: short, after: 365d, step_up: [view], revalidate: [pay]}
  - {id: long, after: 730d, revalidate: ["*"]}
delegations:
  - {id: poa, basis: power_of_attorney, unused_after: 730d}
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	heidi := Ref{Type: "user", ID: "heidi"}
	old := now.Add(-1000 * day)
	rv := &Revalidation{ID: "rv-1", At: now.Add(-time.Hour), Source: "admin", By: Actor{Subject: Ref{Type: "staff", ID: "kim"}}}
	for _, c := range []struct {
		name, typ, action string
		st                State
		effects           []string
	}{
		{"active", "user", "pay", State{LastActive: now.Add(-day)}, nil},
		{"never seen", "user", "pay", State{}, nil},
		{"dormant", "user", "pay", State{LastActive: old}, []string{EffectRevalidate}},
		{"step up", "user", "view", State{LastActive: now.Add(-400 * day)}, []string{EffectStepUp}},
		{"revalidated", "user", "pay", State{LastActive: old, Revalidation: rv}, []string{EffectRevalidated}},
		{"revalidated before the last activity", "user", "pay", State{LastActive: old, Revalidation: &Revalidation{At: old.Add(-day)}}, []string{EffectRevalidate}},
		{"not an identity type", "application", "pay", State{LastActive: old}, nil},
		{"delegation unused", "user", "x", State{Delegations: []DelegationState{{ID: "d", Basis: "power_of_attorney", Since: old}}}, []string{EffectDelegationDormant}},
		{"delegation used", "user", "x", State{Delegations: []DelegationState{{ID: "d", Basis: "power_of_attorney", Since: old, LastUsed: now.Add(-day)}}}, nil},
		{"delegation re-confirmed", "user", "x", State{Delegations: []DelegationState{{ID: "d", Basis: "power_of_attorney", Since: old, Reconfirmation: rv}}}, []string{EffectRevalidated}},
		{"other basis", "user", "x", State{Delegations: []DelegationState{{ID: "d", Basis: "statutory_guardian", Since: old}}}, nil},
		{"both", "user", "pay", State{LastActive: old, Delegations: []DelegationState{{ID: "d", Basis: "power_of_attorney", Since: old}}}, []string{EffectRevalidate, EffectDelegationDormant}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := Evaluate(r, c.typ, c.action, heidi, c.st, now)
			var got []string
			for _, f := range fs {
				got = append(got, f.Effect)
				if f.LastActivity.IsZero() || f.LimitDays == 0 || f.Rule == "" {
					t.Errorf("finding lacks its facts: %+v", f)
				}
				if f.Effect == EffectRevalidated && (f.Revalidation == nil || f.Revalidation.ID != rv.ID || f.Reason != "") {
					t.Errorf("revalidated finding: %+v", f)
				}
			}
			if strings.Join(got, ",") != strings.Join(c.effects, ",") {
				t.Fatalf("effects %v, want %v", got, c.effects)
			}
		})
	}
}

func TestRulesSignals(t *testing.T) {
	r, err := ParseRules([]byte("signals:\n  assurance_levels: [aal2, aal3]\n  event_types: [https://idp.example/identity-proofed]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		event, level string
		want         bool
	}{
		{CAEPAssuranceLevelChange, "aal2", true},
		{CAEPAssuranceLevelChange, "aal3", true},
		{CAEPAssuranceLevelChange, "aal1", false},
		{CAEPAssuranceLevelChange, "", false},
		{"https://idp.example/identity-proofed", "", true},
		{"https://schemas.openid.net/secevent/caep/event-type/session-revoked", "aal2", false},
	} {
		if got := r.Revalidates(c.event, c.level); got != c.want {
			t.Errorf("%s %q: %v, want %v", c.event, c.level, got, c.want)
		}
	}
	if _, err := ParseRules([]byte("signals:\n  event_types: ['']\n")); err == nil {
		t.Error("an empty event type is accepted")
	}
	var none *Rules
	if none.Revalidates(CAEPAssuranceLevelChange, "aal2") {
		t.Error("nil rules revalidate")
	}
}
