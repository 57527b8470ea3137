package delegation

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/changefeed"
)

// TestServicePublishesEveryChange: every change made through the service
// itself (no HTTP) is published to the change feed of Config, under its
// reason; one that is refused is not.
func TestServicePublishesEveryChange(t *testing.T) {
	st, err := OpenFile(filepath.Join(t.TempDir(), "d.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	feed := changefeed.NewChangesSince(time.Second, time.Now().Add(-time.Hour))
	// mobile-banking reads every record, so it may choose the offer's id.
	svc := NewService(Config{Store: st, Publisher: feed, ReaderApplications: []string{"mobile-banking"}})
	ctx := context.Background()
	alice, bob := Ref{Type: "user", ID: "alice"}, Ref{Type: "user", ID: "bob"}
	byAlice := Actor{Application: "mobile-banking", Subject: alice}
	byBob := Actor{Application: "mobile-banking", Subject: bob}
	const id = "dlg-publish"
	for _, tc := range []struct {
		name    string
		change  func() (Delegation, string, error)
		applied bool
	}{
		{"offer", func() (Delegation, string, error) {
			return svc.Offer(ctx, OfferRequest{ID: id, By: byAlice, Principal: alice, Agent: bob,
				Basis: BasisPowerOfAttorney, Source: SourceSelfDeclared, Scope: []string{"view_balance"}, ValidUntil: time.Now().Add(24 * time.Hour)})
		}, true},
		{"accept by the principal is refused", func() (Delegation, string, error) { return svc.Accept(ctx, id, byAlice) }, false},
		{"accept", func() (Delegation, string, error) { return svc.Accept(ctx, id, byBob) }, true},
		{"suspend", func() (Delegation, string, error) { return svc.Suspend(ctx, id, byAlice, "") }, true},
		{"resume", func() (Delegation, string, error) { return svc.Resume(ctx, id, byAlice) }, true},
		{"revoke", func() (Delegation, string, error) { return svc.Revoke(ctx, id, byAlice, "") }, true},
		{"renounce a revoked one is refused", func() (Delegation, string, error) { return svc.Renounce(ctx, id, byBob, "") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := feed.Seq()
			_, _, err := tc.change()
			if tc.applied != (err == nil) {
				t.Fatalf("error %v, want applied=%v", err, tc.applied)
			}
			want := before
			if tc.applied {
				want++
			}
			if got := feed.Seq(); got != want {
				t.Errorf("seq %d after the change, want %d", got, want)
			}
		})
	}
}
