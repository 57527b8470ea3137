package delegation

import (
	"context"
	"errors"
	"testing"

	"github.com/ciampdp/pdp/pdp/actorproof"
	"github.com/ciampdp/pdp/pdp/actorproof/actorprooftest"
)

// bindingClients: the mobile app's users get tokens for its client; the
// budget app's for another.
var bindingClients = map[string][]string{"mobile-banking": {"mobile-banking-ios"}, "budget-app": {"budget-app-web"}}

// TestActorTokenBoundToApplicationAndOneUse: with a real Prover bound to
// the applications' clients and to one use, every change of the service
// refuses the budget app's token replayed by the mobile app, and a token
// used once; nothing is stored by a refused change.
func TestActorTokenBoundToApplicationAndOneUse(t *testing.T) {
	st, sfx := openFileT(t)
	e := newEnv(t, st, sfx)
	idp := actorprooftest.New(t)
	e.svc.actors = idp.Prover(t, actorproof.Options{Clients: bindingClients, Spent: actorproof.NewMemorySpent(100, nil)})
	alice, bob := e.user("alice"), e.user("bob")
	// with proves by with the token tok.
	with := func(tok string) context.Context { return actorproof.WithToken(context.Background(), tok) }
	replayed := func(sub string) context.Context { return with(idp.Token(t, sub, "budget-app-web", nil)) }
	own := func(sub string) context.Context { return with(idp.Token(t, sub, "mobile-banking-ios", nil)) }
	offer := OfferRequest{By: as(alice), Principal: alice, Agent: bob, Basis: BasisPowerOfAttorney,
		Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2030, 1, 1)}

	if _, _, err := e.svc.Offer(replayed(alice.ID), offer); !errors.Is(err, actorproof.ErrUnproven) {
		t.Fatalf("offer with the budget app's token: %v, want ErrUnproven", err)
	}
	if ds, err := st.List(context.Background(), Filter{Agent: &bob}); err != nil || len(ds) != 0 {
		t.Fatalf("a refused offer stored %d records (%v)", len(ds), err)
	}
	once := own(alice.ID)
	d, _, err := e.svc.Offer(once, offer)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Offer(once, offer); !errors.Is(err, actorproof.ErrUnproven) {
		t.Fatalf("a second offer with the same token: %v, want ErrUnproven", err)
	}

	type op struct {
		name string
		by   Ref
		do   func(ctx context.Context, by Actor) (Delegation, string, error)
		then Status
	}
	id := d.ID
	for _, o := range []op{
		{"accept", bob, func(ctx context.Context, by Actor) (Delegation, string, error) { return e.svc.Accept(ctx, id, by) }, StatusActive},
		{"suspend", alice, func(ctx context.Context, by Actor) (Delegation, string, error) {
			return e.svc.Suspend(ctx, id, by, "trip")
		}, StatusSuspended},
		{"resume", alice, func(ctx context.Context, by Actor) (Delegation, string, error) { return e.svc.Resume(ctx, id, by) }, StatusActive},
		{"renounce", bob, func(ctx context.Context, by Actor) (Delegation, string, error) {
			return e.svc.Renounce(ctx, id, by, "no")
		}, StatusRenounced},
	} {
		t.Run(o.name, func(t *testing.T) {
			before := e.get(id)
			if _, _, err := o.do(replayed(o.by.ID), as(o.by)); !errors.Is(err, actorproof.ErrUnproven) {
				t.Fatalf("with the budget app's token: %v, want ErrUnproven", err)
			}
			if after := e.get(id); after.Version != before.Version {
				t.Fatalf("a refused %s was stored", o.name)
			}
			ctx := own(o.by.ID)
			if _, _, err := o.do(ctx, as(o.by)); err != nil {
				t.Fatalf("with the mobile app's token: %v", err)
			}
			if got := e.get(id).Status; got != o.then {
				t.Fatalf("status %s, want %s", got, o.then)
			}
			if _, _, err := o.do(ctx, as(o.by)); !errors.Is(err, actorproof.ErrUnproven) {
				t.Fatalf("the same token again: %v, want ErrUnproven", err)
			}
		})
	}
	t.Run("revoke", func(t *testing.T) {
		d := e.poaWith(own, alice, e.user("carol"))
		if _, _, err := e.svc.Revoke(replayed(alice.ID), d.ID, as(alice), ""); !errors.Is(err, actorproof.ErrUnproven) {
			t.Fatalf("with the budget app's token: %v", err)
		}
		if got := e.get(d.ID).Status; got != StatusActive {
			t.Fatalf("status %s after a refused revoke", got)
		}
		if _, _, err := e.svc.Revoke(own(alice.ID), d.ID, as(alice), ""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an application without clients", func(t *testing.T) {
		by := Actor{Application: "marketing-hub", Subject: alice}
		if _, _, err := e.svc.Offer(own(alice.ID), OfferRequest{By: by, Principal: alice, Agent: bob, Basis: offer.Basis,
			Source: offer.Source, Scope: offer.Scope, ValidUntil: offer.ValidUntil}); !errors.Is(err, actorproof.ErrUnproven) {
			t.Fatalf("%v, want ErrUnproven", err)
		}
	})
}

// poaWith is an accepted power of attorney, each step proven with a fresh
// token of the actor from ctxOf.
func (e *env) poaWith(ctxOf func(sub string) context.Context, principal, agent Ref) Delegation {
	e.t.Helper()
	d, _, err := e.svc.Offer(ctxOf(principal.ID), OfferRequest{By: as(principal), Principal: principal, Agent: agent, Basis: BasisPowerOfAttorney,
		Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2030, 1, 1)})
	if err != nil {
		e.t.Fatal(err)
	}
	if d, _, err = e.svc.Accept(ctxOf(agent.ID), d.ID, as(agent)); err != nil {
		e.t.Fatal(err)
	}
	return d
}
