package consent

import (
	"context"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/changefeed"
)

// TestLedgerPublishesEveryChange: every change made through the ledger
// itself (no HTTP) is published to the change feed of LedgerConfig; one
// that is refused is not.
func TestLedgerPublishesEveryChange(t *testing.T) {
	st, _ := openFileT(t)
	feed := changefeed.NewChangesSince(time.Second, time.Now().Add(-time.Hour))
	e := newLenv(t, st, "", func(c *LedgerConfig) { c.Publisher = feed })
	ctx := context.Background()
	alice := e.user("alice")
	var grant string
	for _, tc := range []struct {
		name    string
		change  func() error
		applied bool
	}{
		{"give", func() error {
			g, _, err := e.l.Give(ctx, advice(alice))
			grant = g.GrantID
			return err
		}, true},
		{"refuse", func() error {
			_, _, err := e.l.Refuse(ctx, advice(e.user("bob")))
			return err
		}, true},
		{"renew", func() error {
			_, _, err := e.l.Renew(ctx, RenewRequest{Application: "advisor-portal", Subject: alice, GrantID: grant, Notice: advice(alice).Notice})
			return err
		}, true},
		{"withdraw", func() error {
			_, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "mobile-banking", Subject: alice, Purpose: "financial_advice"})
			return err
		}, true},
		{"a refused give", func() error {
			r := advice(alice)
			r.Purpose = "no-such-purpose"
			_, _, err := e.l.Give(ctx, r)
			return err
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := feed.Seq()
			err := tc.change()
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
