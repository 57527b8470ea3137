package consent

import (
	"context"
	"slices"
	"testing"
)

// TestLedgerSeesAsTheReadAPI: Ledger.Sees answers for one stored event
// exactly what the read API (HistoryFor) shows each reader: the grant's
// applications and the one that recorded the withdrawal see it, another
// application does not, an administrator sees all; an event that is not
// stored is seen only by those party to it.
func TestLedgerSeesAsTheReadAPI(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newLenv(t, st, sfx)
		ctx := context.Background()
		alice := e.user("alice")
		g := e.give(advice(alice)) // through advisor-portal, covering it
		evs, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "mobile-banking", Subject: alice, GrantID: g.GrantID, Reason: "changed bank"})
		if err != nil || len(evs) != 1 {
			t.Fatalf("withdraw: %v, %d events", err, len(evs))
		}
		w := evs[0]
		for _, tc := range []struct {
			r    Reader
			want bool
		}{
			{Reader{Application: "advisor-portal"}, true}, // party to the grant
			{Reader{Application: "mobile-banking"}, true}, // recorded the withdrawal
			{Reader{Application: "marketing-hub"}, false},
			{Reader{Application: "budget-app"}, false},
			{Reader{Application: "marketing-hub", Admin: true}, true},
			{Reader{}, false},
		} {
			got, err := e.l.Sees(ctx, tc.r, w)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("%+v: Sees = %v, want %v", tc.r, got, tc.want)
			}
			if tc.r.Application == "" {
				continue
			}
			hist, err := e.l.HistoryFor(ctx, alice, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if inHist := slices.ContainsFunc(hist, func(v Event) bool { return v.ID == w.ID }); inHist != got {
				t.Errorf("%+v: Sees = %v, but HistoryFor shows it: %v", tc.r, got, inHist)
			}
		}
		ghost := w
		ghost.ID, ghost.Application, ghost.Applications = "not-stored", "mobile-banking", nil
		if ok, err := e.l.Sees(ctx, Reader{Application: "advisor-portal"}, ghost); ok || err != nil {
			t.Errorf("an event not stored: %v, %v; want false", ok, err)
		}
	})
}
