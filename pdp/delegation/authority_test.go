package delegation

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestRegisterRecordsChangeOnlyThroughTheRegister: a statutory delegation a
// register recorded is revoked, suspended and resumed only by a register
// application, whoever the actor; a register-sourced power of attorney
// also by its principal; and only a register application offers one.
func TestRegisterRecordsChangeOnlyThroughTheRegister(t *testing.T) {
	st, sfx := openFileT(t)
	e := newEnv(t, st, sfx)
	ctx := context.Background()
	carol, dave, mallory, alice, bob := e.user("carol"), e.user("dave"), e.user("mallory"), e.user("alice"), e.user("bob")
	other := func(r Ref) Actor { return Actor{Application: "mobile-banking", Subject: r} }
	viaRegister := func(r Ref) Actor { return Actor{Application: register.Application, Subject: r} }

	if _, _, err := e.svc.Offer(ctx, OfferRequest{By: other(carol), Principal: carol, Agent: mallory, Basis: BasisStatutoryGuardian,
		Source: SourceRegister, Scope: []string{"*"}, ValidUntil: date(2032, 1, 1)}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a register-sourced offer from mobile-banking: %v, want forbidden", err)
	}
	guardian := e.offer(OfferRequest{By: register, Principal: carol, Agent: dave, Basis: BasisStatutoryGuardian,
		Source: SourceRegister, Scope: []string{"*"}, ValidUntil: date(2032, 1, 1)})
	poa := e.offer(OfferRequest{By: register, Principal: alice, Agent: bob, Basis: BasisPowerOfAttorney,
		Source: SourceRegister, Scope: []string{"view_statements"}, ValidUntil: date(2032, 1, 1)})
	poa = e.accept(poa.ID, bob)

	type op func(id string, by Actor) error
	suspend := func(id string, by Actor) error { _, _, err := e.svc.Suspend(ctx, id, by, "t"); return err }
	resume := func(id string, by Actor) error { _, _, err := e.svc.Resume(ctx, id, by); return err }
	revoke := func(id string, by Actor) error { _, _, err := e.svc.Revoke(ctx, id, by, "t"); return err }
	for _, tc := range []struct {
		name string
		d    Delegation
		by   Actor
		ok   bool
		// hidden: refused as an unknown id (ErrNotFound), since
		// mobile-banking may not read the guardian and the actor takes no
		// part in it (Service.Hides); else refused ErrForbidden.
		hidden bool
	}{
		{"guardian: mobile-banking as mallory", guardian, other(mallory), false, true},
		{"guardian: mobile-banking as the ward", guardian, other(carol), false, false},
		{"guardian: mobile-banking as the guardian", guardian, other(dave), false, false},
		{"guardian: mobile-banking as the register's clerk", guardian, other(register.Subject), false, true},
		{"guardian: the guardian through the register application", guardian, viaRegister(dave), true, false},
		{"guardian: the register", guardian, register, true, false},
		{"register poa: mobile-banking as mallory", poa, other(mallory), false, false},
		{"register poa: mobile-banking as the principal", poa, other(alice), true, false},
		{"register poa: the register", poa, register, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, step := range []op{suspend, resume} {
				before := e.get(tc.d.ID)
				err := step(tc.d.ID, tc.by)
				if tc.ok && err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if !tc.ok {
					if want := ErrForbidden; tc.hidden && !errors.Is(err, ErrNotFound) || !tc.hidden && !errors.Is(err, want) {
						t.Fatalf("step %d: %v, want forbidden (hidden: not found): hidden=%v", i, err, tc.hidden)
					}
					if after := e.get(tc.d.ID); after.Version != before.Version {
						t.Fatalf("a refused change was stored: version %d -> %d", before.Version, after.Version)
					}
					return
				}
			}
		})
	}
	if err := revoke(guardian.ID, other(carol)); !errors.Is(err, ErrForbidden) {
		t.Fatalf("the ward revokes her guardianship: %v", err)
	}
	if err := revoke(guardian.ID, register); err != nil {
		t.Fatal(err)
	}
}

// refusingProver proves no one but its one user.
type refusingProver struct{ user string }

func (p refusingProver) Prove(_ context.Context, _, typ, id string) error {
	if typ == "user" && id == p.user {
		return nil
	}
	return fmt.Errorf("not proven: %s:%s", typ, id)
}

// TestActorProof: with an ActorProver every change asks it first, and a
// refusal changes nothing.
func TestActorProof(t *testing.T) {
	st, sfx := openFileT(t)
	e := newEnv(t, st, sfx)
	ctx := context.Background()
	alice, bob := e.user("alice"), e.user("bob")
	e.svc.actors = refusingProver{user: alice.ID}
	r := OfferRequest{By: as(alice), Principal: alice, Agent: bob, Basis: BasisPowerOfAttorney,
		Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2030, 1, 1)}
	if _, _, err := e.svc.Offer(ctx, OfferRequest{By: as(bob), Principal: alice, Agent: bob, Basis: r.Basis,
		Source: r.Source, Scope: r.Scope, ValidUntil: r.ValidUntil}); err == nil {
		t.Fatal("an offer by an unproven actor")
	}
	d := e.offer(r)
	if _, _, err := e.svc.Accept(ctx, d.ID, as(bob)); err == nil || e.get(d.ID).Status != StatusOffered {
		t.Fatalf("accept by an unproven agent: %v, %s", err, e.get(d.ID).Status)
	}
	if _, _, err := e.svc.Revoke(ctx, d.ID, as(alice), ""); err != nil {
		t.Fatal(err)
	}
}
