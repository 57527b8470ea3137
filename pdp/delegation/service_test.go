package delegation

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// wantRule fails unless err is a *RuleError with the code whose message
// contains every part.
func wantRule(t *testing.T, err error, code string, parts ...string) {
	t.Helper()
	var re *RuleError
	if !errors.As(err, &re) {
		t.Fatalf("error %v, want a RuleError %s", err, code)
	}
	if re.Code != code {
		t.Errorf("code %s (%s), want %s", re.Code, re.Msg, code)
	}
	for _, p := range parts {
		if !strings.Contains(re.Msg, p) {
			t.Errorf("message %q lacks %q", re.Msg, p)
		}
	}
	if (code == CodeForbidden) != errors.Is(err, ErrForbidden) {
		t.Errorf("errors.Is(%v, ErrForbidden) = %v", err, !(code == CodeForbidden))
	}
}

func TestOfferValidation(t *testing.T) {
	st, sfx := openFileT(t)
	e := newEnv(t, st, sfx)
	alice, bob := e.user("alice"), e.user("bob")
	ok := func() OfferRequest {
		return OfferRequest{By: as(alice), Principal: alice, Agent: bob, Basis: BasisPowerOfAttorney,
			Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2030, 1, 1)}
	}
	tests := []struct {
		name  string
		edit  func(r *OfferRequest)
		code  string
		parts []string
	}{
		{"no principal", func(r *OfferRequest) { r.Principal = Ref{} }, CodeInvalid, []string{"principal: type and id are required"}},
		{"capital type", func(r *OfferRequest) { r.Agent.Type = "User" }, CodeInvalid, []string{"agent: type \"User\""}},
		{"bad id", func(r *OfferRequest) { r.Agent.ID = "bob smith" }, CodeInvalid, []string{`agent: id "bob smith"`}},
		{"agent is principal", func(r *OfferRequest) { r.Agent = alice }, CodeInvalid, []string{"is the principal"}},
		{"basis", func(r *OfferRequest) { r.Basis = "friendship" }, CodeInvalid, []string{`basis "friendship"`}},
		{"source", func(r *OfferRequest) { r.Source = "rumour" }, CodeInvalid, []string{`source "rumour"`}},
		{"empty scope", func(r *OfferRequest) { r.Scope = nil }, CodeInvalid, []string{"scope: at least one"}},
		{"reserved any", func(r *OfferRequest) { r.Scope = []string{"any"} }, CodeInvalid, []string{`"any" is reserved`}},
		{"bad action", func(r *OfferRequest) { r.Scope = []string{"View-Statements"} }, CodeInvalid, []string{`action "View-Statements"`}},
		{"bad resource", func(r *OfferRequest) { r.Resources = []Ref{{Type: "account"}} }, CodeInvalid, []string{"resources[0]"}},
		{"no until", func(r *OfferRequest) { r.ValidUntil = time.Time{} }, CodeInvalid, []string{"valid_until is required"}},
		{"until before from", func(r *OfferRequest) { r.ValidFrom = date(2031, 1, 1) }, CodeInvalid,
			[]string{"valid_until 2030-01-01T00:00:00Z is not after valid_from 2031-01-01T00:00:00Z"}},
		{"until in the past", func(r *OfferRequest) { r.ValidUntil = date(2025, 1, 1) }, CodeInvalid, []string{"is not after valid_from"}},
		{"negative depth", func(r *OfferRequest) { r.MaxDepth = -1 }, CodeInvalid, []string{"max_depth -1 is negative"}},
		{"negative amount", func(r *OfferRequest) { r.Constraints.MaxAmount = amount(-5) }, CodeInvalid, []string{"max_amount -5"}},
		{"currency", func(r *OfferRequest) { r.Constraints.Currency = "EURO" }, CodeInvalid, []string{`currency "EURO"`}},
		{"parent without sub_delegation", func(r *OfferRequest) { r.Parent = "dlg-1" }, CodeInvalid, []string{"only allowed with basis sub_delegation"}},
		{"sub_delegation without parent", func(r *OfferRequest) { r.Basis = BasisSubDelegation }, CodeInvalid, []string{"needs a parent"}},
		{"missing parent", func(r *OfferRequest) { r.Basis, r.Parent = BasisSubDelegation, "dlg-nope" }, CodeInvalid, []string{"parent delegation dlg-nope does not exist"}},
		{"bad offer id", func(r *OfferRequest) { r.ID = "dlg 1" }, CodeInvalid, []string{`id "dlg 1"`}},
		{"no application", func(r *OfferRequest) { r.By.Application = "" }, CodeInvalid, []string{"by.application"}},
		{"stranger", func(r *OfferRequest) { r.By = as(e.user("mallory")) }, CodeForbidden,
			[]string{"mallory", "may not offer a delegation for " + alice.String()}},
		{"agent offers to themself", func(r *OfferRequest) { r.By = as(bob) }, CodeForbidden, []string{"may not offer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.edit(&r)
			d, _, err := e.svc.Offer(context.Background(), r)
			wantRule(t, err, tt.code, tt.parts...)
			if d.ID != "" {
				t.Errorf("a refused offer returned a record %s", d.ID)
			}
		})
	}
	if all, _ := e.st.List(context.Background(), Filter{}); len(all) != 0 {
		t.Errorf("refused offers stored %d records", len(all))
	}
	// The valid one, with the id given (by a register application: see
	// TestOfferIDChosenOnlyByWhomMayLearnIt) and the currency normalised.
	r := ok()
	r.ID, r.Constraints = "dlg-given", Constraints{MaxAmount: amount(10), Currency: "eur"}
	r.By.Application = register.Application
	d, token, err := e.svc.Offer(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "dlg-given" || d.Status != StatusOffered || d.Constraints.Currency != "EUR" || !d.ValidFrom.Equal(today) ||
		d.Version != 1 || len(d.History) != 1 || token == "" {
		t.Errorf("offer = %s, token %q", jsonOf(t, d), token)
	}
	if _, _, err := e.svc.Offer(context.Background(), r); !errors.Is(err, ErrExists) {
		t.Errorf("offer with a taken id = %v, want ErrExists", err)
	}
}

func TestOfferStatutory(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newEnv(t, st, sfx)
		carol, dave := e.user("carol"), e.user("dave")
		tests := []struct {
			basis  Basis
			source Source
			want   Status
			events []string
		}{
			{BasisStatutoryGuardian, SourceRegister, StatusActive, []string{EventOffered, EventActivated}},
			{BasisLegalRepresentative, SourceRegister, StatusActive, []string{EventOffered, EventActivated}},
			{BasisStatutoryGuardian, SourceSelfDeclared, StatusOffered, []string{EventOffered}},
			{BasisPowerOfAttorney, SourceRegister, StatusOffered, []string{EventOffered}},
		}
		for _, tt := range tests {
			by := register
			if tt.source == SourceSelfDeclared {
				by = as(carol)
			}
			d := e.offer(OfferRequest{By: by, Principal: carol, Agent: dave, Basis: tt.basis, Source: tt.source,
				Scope: []string{"*"}, ValidUntil: date(2032, 5, 1)})
			var events []string
			for _, ev := range d.History {
				events = append(events, ev.Type)
			}
			if d.Status != tt.want || strings.Join(events, ",") != strings.Join(tt.events, ",") || d.AcceptedAt != nil {
				t.Errorf("%s from %s: status %s events %v accepted %v; want %s %v", tt.basis, tt.source, d.Status, events, d.AcceptedAt, tt.want, tt.events)
			}
			if got := e.proj.last(d.ID); got != tt.want {
				t.Errorf("%s from %s: projected %q, want %s", tt.basis, tt.source, got, tt.want)
			}
			if stored := e.get(d.ID); jsonOf(t, stored) != jsonOf(t, d) {
				t.Errorf("stored %s\nreturned %s", jsonOf(t, stored), jsonOf(t, d))
			}
		}
	})
}
