package revalidation

import (
	"context"
	"errors"
	"testing"

	"github.com/ciampdp/pdp/pdp/actorproof"
	"github.com/ciampdp/pdp/pdp/actorproof/actorprooftest"
)

// TestActorTokenBoundToApplicationAndOneUse: with a real Prover bound to
// the applications' clients and to one use, a re-confirmation and a
// revalidation refuse a token another application's client got, and a
// token used once.
func TestActorTokenBoundToApplicationAndOneUse(t *testing.T) {
	svc, _ := fileSetup(t, nil)
	idp := actorprooftest.New(t)
	svc.c.Actors = idp.Prover(t, actorproof.Options{
		Clients: map[string][]string{"banking": {"banking-ios"}, "backoffice": {"backoffice-web"}, "budget": {"budget-web"}},
		Spent:   actorproof.NewMemorySpent(100, nil),
	})
	user := func(id string) Ref { return Ref{Type: "user", ID: id} }
	with := func(sub, client string) context.Context {
		return actorproof.WithToken(context.Background(), idp.Token(t, sub, client, nil))
	}
	for _, o := range []struct {
		name, actor, own string
		do               func(ctx context.Context) error
	}{
		{"reconfirm", "alice", "banking-ios", func(ctx context.Context) error {
			_, err := svc.ReconfirmDelegation(ctx, ReconfirmRequest{Delegation: "poa-v", By: Actor{Application: "banking", Subject: user("alice")}})
			return err
		}},
		{"revalidate", "kim", "backoffice-web", func(ctx context.Context) error {
			_, err := svc.RevalidateIdentity(ctx, RevalidateRequest{Subject: user("heidi"), By: Actor{Application: "backoffice", Subject: user("kim")}})
			return err
		}},
	} {
		t.Run(o.name, func(t *testing.T) {
			before, err := svc.c.Store.After(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := o.do(with(o.actor, "budget-web")); !errors.Is(err, actorproof.ErrUnproven) {
				t.Fatalf("with the budget app's token: %v, want ErrUnproven", err)
			}
			if after, _ := svc.c.Store.After(context.Background(), 0); len(after) != len(before) {
				t.Fatal("a refused change was stored")
			}
			ctx := with(o.actor, o.own)
			if err := o.do(ctx); err != nil {
				t.Fatalf("with the application's own token: %v", err)
			}
			if err := o.do(ctx); !errors.Is(err, actorproof.ErrUnproven) {
				t.Fatalf("the same token again: %v, want ErrUnproven", err)
			}
		})
	}
}
