package revalidation

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/actorproof"
	"github.com/ciampdp/pdp/pdp/actorproof/actorprooftest"
)

// TestReconfirmProvesTheActorFirst: with actor tokens on, a
// re-confirmation without the actor's token is refused as unproven
// whatever the delegation — one that does not exist, one in force, one
// not yet accepted — and whoever the actor named (its principal or not):
// no answer tells the application anything about the record.
func TestReconfirmProvesTheActorFirst(t *testing.T) {
	svc, _ := fileSetup(t, nil)
	idp := actorprooftest.New(t)
	svc.c.Actors = idp.Prover(t, actorproof.Options{})
	for _, id := range []string{"poa-v", "poa-o", "poa-nobody"} {
		for _, actor := range []string{"alice", "mallory"} {
			_, err := svc.ReconfirmDelegation(context.Background(), ReconfirmRequest{Delegation: id,
				By: Actor{Application: "banking", Subject: Ref{Type: "user", ID: actor}}})
			if !errors.Is(err, actorproof.ErrUnproven) || strings.Contains(err.Error(), id) {
				t.Fatalf("%s as %s without a token: %v, want unproven, not naming the delegation", id, actor, err)
			}
		}
	}
}

// TestReconfirmUnseenAsUnknown: a re-confirmation through an application
// that may not read the delegation, by an actor who takes no part in it,
// is refused exactly as one of an id that does not exist (404); its agent
// is refused 403 without the principal's name, the principal re-confirms,
// and an application that reads the record is told who the principal is.
func TestReconfirmUnseenAsUnknown(t *testing.T) {
	svc, _ := fileSetup(t, nil)
	svc.c.ReconfirmApplications = append(svc.c.ReconfirmApplications, "app") // "app" made the records
	ctx := context.Background()
	reconfirm := func(app, id, actor string) error {
		_, err := svc.ReconfirmDelegation(ctx, ReconfirmRequest{Delegation: id, By: Actor{Application: app, Subject: Ref{Type: "user", ID: actor}}})
		return err
	}
	missing := reconfirm("banking", "poa-nobody", "mallory")
	if !errors.Is(missing, ErrNotFound) {
		t.Fatalf("an unknown id: %v", missing)
	}
	for _, id := range []string{"poa-v", "poa-o"} {
		err := reconfirm("banking", id, "mallory")
		if want := strings.Replace(missing.Error(), "poa-nobody", id, 1); err == nil || err.Error() != want || !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s by a stranger through banking: %v, want exactly %q", id, err, want)
		}
		if err := reconfirm("app", id, "mallory"); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "user:alice") {
			t.Fatalf("%s by a stranger through the application that reads it: %v, want 403 naming the principal", id, err)
		}
	}
	if err := reconfirm("banking", "poa-v", "victor"); !errors.Is(err, ErrForbidden) || strings.Contains(err.Error(), "alice") {
		t.Fatalf("the agent through banking: %v, want 403 without the principal", err)
	}
	if err := reconfirm("banking", "poa-o", "alice"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("the principal, not in force: %v, want invalid", err)
	}
	if err := reconfirm("banking", "poa-v", "alice"); err != nil {
		t.Fatalf("the principal: %v", err)
	}
}
