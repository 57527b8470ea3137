package delegation

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestCascadeMakesNoReader: a revoke (or renounce) through an application
// ends the sub-delegations too, and their histories say so — who caused
// it and through which application, marked as a cascade — but that
// application does not become a reader of them: it reads the record it
// changed, not the ones another application made under it (visibility does
// not pass along a chain). A direct change of the sub-delegation still
// makes its application a party.
func TestCascadeMakesNoReader(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		for _, end := range []string{"revoke", "renounce"} {
			t.Run(end, func(t *testing.T) {
				e := newEnv(t, st, sfx)
				e.svc = NewService(Config{Store: st, Projector: e.proj, Now: e.clock.Now,
					NewID: func() string { return fmt.Sprintf("dlg-%s-%d%s", end, e.ids.Add(1), sfx) }})
				ctx := context.Background()
				alice, bob, erin, frank := e.user("alice"), e.user("bob"), e.user("erin"), e.user("frank")
				via := func(app string, r Ref) Actor { return Actor{Application: app, Subject: r} }
				// alice's power of attorney to bob through mobile-banking;
				// bob sub-delegates to erin, erin to frank, through agent-app.
				poa := e.poa(alice, bob, []string{"*"}, 2)
				sub := e.offer(OfferRequest{By: via("agent-app", bob), Principal: alice, Agent: erin, Basis: BasisSubDelegation,
					Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2030, 1, 1), Parent: poa.ID, MaxDepth: 1})
				if _, _, err := e.svc.Accept(ctx, sub.ID, via("agent-app", erin)); err != nil {
					t.Fatal(err)
				}
				subsub := e.offer(OfferRequest{By: via("agent-app", erin), Principal: alice, Agent: frank, Basis: BasisSubDelegation,
					Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2030, 1, 1), Parent: sub.ID})

				// advisor-portal ends the root: alice revokes, or bob renounces.
				var err error
				if end == "revoke" {
					_, _, err = e.svc.Revoke(ctx, poa.ID, via("advisor-portal", alice), "lost trust")
				} else {
					_, _, err = e.svc.Renounce(ctx, poa.ID, via("advisor-portal", bob), "moving abroad")
				}
				if err != nil {
					t.Fatal(err)
				}
				advisor := Reader{Application: "advisor-portal"}
				if _, err := e.svc.GetFor(ctx, poa.ID, advisor); err != nil {
					t.Fatalf("the record it changed: %v", err)
				}
				for _, id := range []string{sub.ID, subsub.ID} {
					d := e.get(id)
					if d.Status != StatusRevoked {
						t.Fatalf("%s: %s, want revoked by the cascade", id, d.Status)
					}
					last := d.History[len(d.History)-1]
					if last.By.Application != "advisor-portal" || !last.Cascade {
						t.Errorf("%s: last event %+v, want advisor-portal's, marked as a cascade", id, last)
					}
					if e.svc.Sees(advisor, d) {
						t.Errorf("%s: advisor-portal reads a sub-delegation it only ended through its parent", id)
					}
					if _, err := e.svc.GetFor(ctx, id, advisor); !errors.Is(err, ErrNotFound) {
						t.Errorf("GetFor(%s): %v, want not found", id, err)
					}
					if got, err := e.svc.ListFor(ctx, Filter{Parent: d.Parent}, advisor); err != nil || len(got) != 0 {
						t.Errorf("ListFor(parent %s) = %d records, %v; want none", d.Parent, len(got), err)
					}
					if !e.svc.Sees(Reader{Application: "agent-app"}, d) {
						t.Errorf("%s: agent-app, which made it, no longer reads it", id)
					}
				}
			})
		}
	})
}
