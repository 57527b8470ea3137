package consent

import (
	"context"
	"errors"
	"testing"

	"github.com/ciampdp/pdp/pdp/actorproof"
	"github.com/ciampdp/pdp/pdp/actorproof/actorprooftest"
)

// TestLedgerActorTokenBoundToApplicationAndOneUse: with a real Prover
// bound to the applications' clients and to one use, every consent change
// refuses the budget app's token of the subject replayed by the advisor
// portal, and a token used once; a refused change records nothing.
func TestLedgerActorTokenBoundToApplicationAndOneUse(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		idp := actorprooftest.New(t)
		prover := idp.Prover(t, actorproof.Options{
			Clients: map[string][]string{"advisor-portal": {"advisor-portal-web"}, "budget-app": {"budget-app-web"}},
			Spent:   actorproof.NewMemorySpent(100, nil),
		})
		e := newLenv(t, st, sfx, func(c *LedgerConfig) { c.Actors = prover })
		alice := e.user("alice")
		with := func(client string) context.Context {
			return actorproof.WithToken(context.Background(), idp.Token(t, alice.ID, client, nil))
		}
		events := func() int {
			t.Helper()
			evs, err := e.l.History(context.Background(), alice)
			if err != nil {
				t.Fatal(err)
			}
			return len(evs)
		}
		var grant string
		for _, o := range []struct {
			name string
			do   func(ctx context.Context) error
		}{
			{"give", func(ctx context.Context) error {
				ev, _, err := e.l.Give(ctx, advice(alice))
				if err == nil {
					grant = ev.GrantID
				}
				return err
			}},
			{"renew", func(ctx context.Context) error {
				_, _, err := e.l.Renew(ctx, RenewRequest{Application: "advisor-portal", Subject: alice, GrantID: grant, Notice: advice(alice).Notice})
				return err
			}},
			{"withdraw", func(ctx context.Context) error {
				_, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "advisor-portal", Subject: alice, GrantID: grant})
				return err
			}},
			{"refuse", func(ctx context.Context) error {
				_, _, err := e.l.Refuse(ctx, advice(alice))
				return err
			}},
		} {
			t.Run(o.name, func(t *testing.T) {
				before := events()
				if err := o.do(with("budget-app-web")); !errors.Is(err, actorproof.ErrUnproven) {
					t.Fatalf("with the budget app's token: %v, want ErrUnproven", err)
				}
				if n := events(); n != before {
					t.Fatalf("a refused %s recorded %d events", o.name, n-before)
				}
				ctx := with("advisor-portal-web")
				if err := o.do(ctx); err != nil {
					t.Fatalf("with the advisor portal's token: %v", err)
				}
				after := events()
				if err := o.do(ctx); !errors.Is(err, actorproof.ErrUnproven) {
					t.Fatalf("the same token again: %v, want ErrUnproven", err)
				}
				if n := events(); n != after {
					t.Fatalf("a replayed %s recorded %d events", o.name, n-after)
				}
			})
		}
		t.Run("a controller's revocation needs no token", func(t *testing.T) {
			ev, _, err := e.l.Give(with("advisor-portal-web"), advice(alice))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.l.Withdraw(context.Background(), WithdrawRequest{Application: "advisor-portal", Subject: alice, GrantID: ev.GrantID, Revoke: true, Reason: "fraud"}); err != nil {
				t.Fatal(err)
			}
		})
	})
}
