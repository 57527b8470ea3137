package sources

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
)

// TestRepresentativeNoProbe: the consent ledger's question about a
// delegation answers an id that does not exist exactly as one that is not
// the representative's, so that a consent change naming a delegation
// cannot tell whether an id exists; the representative's own delegation
// in force answers its mandate.
func TestRepresentativeNoProbe(t *testing.T) {
	st, err := delegation.OpenFile(filepath.Join(t.TempDir(), "d.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc := delegation.NewService(delegation.Config{Store: st})
	ctx := context.Background()
	alice, bob := delegation.Ref{Type: "user", ID: "alice"}, delegation.Ref{Type: "user", ID: "bob"}
	by := func(r delegation.Ref) delegation.Actor {
		return delegation.Actor{Application: "mobile-banking", Subject: r}
	}
	d, _, err := svc.Offer(ctx, delegation.OfferRequest{By: by(alice), Principal: alice, Agent: bob, Basis: delegation.BasisPowerOfAttorney,
		Source: delegation.SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: time.Now().AddDate(1, 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Accept(ctx, d.ID, by(bob)); err != nil {
		t.Fatal(err)
	}
	r := Representatives{Service: svc}
	cref := func(id string) consent.Ref { return consent.Ref{Type: "user", ID: id} }
	now := time.Now()
	_, missing := r.Representative(ctx, cref("mallory"), cref("alice"), "dlg-nobody", now)
	_, other := r.Representative(ctx, cref("mallory"), cref("alice"), d.ID, now)
	if missing == nil || other == nil || missing.Error() != other.Error() || !errors.Is(missing, ErrNotRepresentative) {
		t.Fatalf("an unknown id: %v; another's delegation: %v; want the same error", missing, other)
	}
	if m, err := r.Representative(ctx, cref("bob"), cref("alice"), d.ID, now); err != nil || len(m.Scope) != 1 {
		t.Fatalf("bob's own: %+v %v", m, err)
	}
}
