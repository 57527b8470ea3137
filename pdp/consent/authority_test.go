package consent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/ciampdp/pdp/pdp/purposes"
)

func TestRepresentableBy(t *testing.T) {
	advice := Purpose{ID: "financial_advice", RepresentativeScope: []string{"view_portfolio"}}
	marketing := Purpose{ID: "marketing"}
	for _, tc := range []struct {
		name string
		p    Purpose
		m    Mandate
		want bool
	}{
		{"view-only power of attorney, advice", advice, Mandate{Scope: []string{"view_statements"}}, false},
		{"portfolio power of attorney, advice", advice, Mandate{Scope: []string{"view_statements", "view_portfolio"}}, true},
		{"every action, advice", advice, Mandate{Scope: []string{"*"}}, true},
		{"a guardian of view and pay, advice", advice, Mandate{Statutory: true, Scope: []string{"view_statements"}}, false},
		{"a guardian, a purpose without representative_scope", marketing, Mandate{Statutory: true, Scope: []string{"view_statements"}}, true},
		{"a power of attorney, a purpose without representative_scope", marketing, Mandate{Scope: []string{"view_statements", "make_payment"}}, false},
		{"every action, a purpose without representative_scope", marketing, Mandate{Scope: []string{"*"}}, true},
	} {
		if got := tc.p.RepresentableBy(tc.m); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRegistryRepresentativeScope(t *testing.T) {
	base := "version: \"1\"\npurposes:\n  p:\n    version: 1\n    applications: [a]\n    rules: {\"*\": {basis: consent, default: opt_in}}\n"
	reg, err := purposes.ParseRegistry([]byte(base + "    representative_scope: [view_portfolio, make_payment]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := reg.Purposes["p"].RepresentativeScope; !slices.Equal(got, []string{"view_portfolio", "make_payment"}) {
		t.Fatalf("representative_scope %v", got)
	}
	for _, bad := range []string{"[]", "view_portfolio", "[\"View\"]", "[a, a]"} {
		if _, err := purposes.ParseRegistry([]byte(base + "    representative_scope: " + bad + "\n")); !errors.Is(err, purposes.ErrInvalidRegistry) {
			t.Errorf("representative_scope %s: %v, want ErrInvalidRegistry", bad, err)
		}
	}
}

// TestRepresentativeWithinMandate: a representative gives, refuses, renews
// and withdraws only within their delegation's scope; nothing is written
// otherwise.
func TestRepresentativeWithinMandate(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newLenv(t, st, sfx)
		ctx := context.Background()
		reg := testRegistry(t)
		p := reg.Purposes["financial_advice"]
		p.RepresentativeScope = []string{"view_portfolio"}
		reg.Purposes["financial_advice"] = p
		e.reg.Store(reg)
		alice, peggy, victor := e.user("alice"), e.user("peggy"), e.user("victor")
		e.dels.add("poa-peggy"+sfx, fakeDelegation{principal: alice, agent: peggy, from: ymd(2026, 1, 1), until: ymd(2031, 1, 1), scope: []string{"view_statements"}})
		e.dels.add("poa-victor"+sfx, fakeDelegation{principal: alice, agent: victor, from: ymd(2026, 1, 1), until: ymd(2031, 1, 1), scope: []string{"view_portfolio"}})
		g := e.give(advice(alice))
		as := func(actor Ref, del string) ChoiceRequest {
			r := advice(alice)
			r.Actor, r.Delegation = actor, del
			return r
		}
		head := e.l.Head()
		for name, do := range map[string]func() error{
			"give":   func() error { _, _, err := e.l.Give(ctx, as(peggy, "poa-peggy"+sfx)); return err },
			"refuse": func() error { _, _, err := e.l.Refuse(ctx, as(peggy, "poa-peggy"+sfx)); return err },
			"withdraw": func() error {
				_, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "advisor-portal", Subject: alice, Actor: peggy, Delegation: "poa-peggy" + sfx, Purpose: "financial_advice"})
				return err
			},
			"renew": func() error {
				_, _, err := e.l.Renew(ctx, RenewRequest{Application: "advisor-portal", Subject: alice, Actor: peggy, Delegation: "poa-peggy" + sfx, GrantID: g.GrantID, Notice: advice(alice).Notice})
				return err
			},
		} {
			err := do()
			var re *RuleError
			if !errors.As(err, &re) || re.Code != CodeOutOfScope || !errors.Is(err, ErrForbidden) {
				t.Errorf("%s by peggy: %v, want %s", name, err, CodeOutOfScope)
			}
		}
		if e.l.Head() != head {
			t.Fatalf("refused writes moved the head from %d to %d", head, e.l.Head())
		}
		if _, _, err := e.l.Give(ctx, as(victor, "poa-victor"+sfx)); err != nil {
			t.Fatalf("victor, whose delegation covers view_portfolio: %v", err)
		}
	})
}

// TestReaderVisible: an application sees the events it is party to, and
// the ends of its grants, whoever recorded them.
func TestReaderVisible(t *testing.T) {
	alice := Ref{"user", "alice"}
	evs := []Event{
		{Position: 1, ID: "g-adv", GrantID: "g-adv", Type: EventGiven, Subject: alice, Application: "advisor-portal", Applications: []string{"advisor-portal"}, Purpose: "financial_advice"},
		{Position: 2, ID: "g-ais", GrantID: "g-ais", Type: EventGiven, Subject: alice, Application: "budget-app", Applications: []string{"budget-app"}, Purpose: "account_information_sharing"},
		{Position: 3, ID: "w-adv", Type: EventWithdrawn, Subject: alice, Application: "mobile-banking", Purpose: "financial_advice"},
		{Position: 4, ID: "r-ais", GrantID: "g-ais", Type: EventRenewed, Subject: alice, Application: "budget-app", Purpose: "account_information_sharing"},
		{Position: 5, ID: "ref-mkt", Type: EventRefused, Subject: alice, Application: "marketing-hub", Applications: []string{"marketing-hub"}, Purpose: "marketing"},
		{Position: 6, ID: "g-shared", GrantID: "g-shared", Type: EventGiven, Subject: alice, Application: "budget-app", Applications: []string{"budget-app", "advisor-portal"}, Purpose: "account_information_sharing"},
	}
	for _, tc := range []struct {
		r    Reader
		want []string
	}{
		{Reader{Application: "advisor-portal"}, []string{"g-adv", "w-adv", "g-shared"}},
		{Reader{Application: "budget-app"}, []string{"g-ais", "r-ais", "g-shared"}},
		{Reader{Application: "marketing-hub"}, []string{"ref-mkt"}},
		{Reader{Application: "mobile-banking"}, []string{"w-adv"}},
		{Reader{Application: "mobile-banking", Admin: true}, []string{"g-adv", "g-ais", "w-adv", "r-ais", "ref-mkt", "g-shared"}},
	} {
		var got []string
		for _, e := range tc.r.visible(evs) {
			got = append(got, e.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v sees %v, want %v", tc.r, got, tc.want)
		}
	}
}

// oneUser proves only its user.
type oneUser string

func (u oneUser) Prove(_ context.Context, _, typ, id string) error {
	if typ == "user" && id == string(u) {
		return nil
	}
	return fmt.Errorf("not proven: %s:%s", typ, id)
}

// TestLedgerActorProof: with an ActorProver the subject (or their
// representative) must be proven; a controller's revocation is the
// application's own act.
func TestLedgerActorProof(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		alice := Ref{"user", "alice" + sfx}
		e := newLenv(t, st, sfx, func(c *LedgerConfig) { c.Actors = oneUser("mallory") })
		ctx := context.Background()
		if _, _, err := e.l.Give(ctx, advice(alice)); err == nil {
			t.Fatal("a grant for alice proven as mallory")
		}
		e.l.actors = oneUser(alice.ID)
		g := e.give(advice(alice))
		e.l.actors = oneUser("mallory")
		if _, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "advisor-portal", Subject: alice, GrantID: g.GrantID}); err == nil {
			t.Fatal("a withdrawal for alice proven as mallory")
		}
		if _, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "advisor-portal", Subject: alice, GrantID: g.GrantID, Revoke: true, Reason: "court order"}); err != nil {
			t.Fatalf("the controller's revocation: %v", err)
		}
	})
}
