package revalidation

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestReconfirmRefusalNamesNoOneUnseen: a re-confirmation refused because
// the actor is not the principal stays 403 (ErrForbidden), but through an
// application that may not read the delegation (it took no part in it) the
// refusal does not name the principal.
func TestReconfirmRefusalNamesNoOneUnseen(t *testing.T) {
	svc, _ := fileSetup(t, nil)
	_, err := svc.ReconfirmDelegation(context.Background(), ReconfirmRequest{Delegation: "poa-v",
		By: Actor{Application: "banking", Subject: Ref{Type: "user", ID: "victor"}}})
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("got %v, want forbidden", err)
	}
	if strings.Contains(err.Error(), "alice") {
		t.Fatalf("the refusal names the principal to an application that may not read the delegation: %v", err)
	}
}
