package revalidation

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/dormancy"
)

// TestReconfirmOnlyInForce: a delegation is re-confirmed only when it is
// in force now (its effective status): one stored active but past its
// window or before it is refused, naming the status in force.
func TestReconfirmOnlyInForce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cst, err := consent.OpenFile(filepath.Join(dir, "c.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cst.Close() })
	dst, err := delegation.OpenFile(filepath.Join(dir, "d.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dst.Close() })
	dels := delegation.NewService(delegation.Config{Store: dst, Now: func() time.Time { return testNow }})
	alice, victor := delegation.Ref{Type: "user", ID: "alice"}, delegation.Ref{Type: "user", ID: "victor"}
	by := delegation.Actor{Application: "app", Subject: alice}
	rec := func(id string, from, until time.Time, st delegation.Status) delegation.Delegation {
		return delegation.Delegation{ID: id, Principal: alice, Agent: victor, Basis: delegation.BasisPowerOfAttorney,
			Source: delegation.SourceSelfDeclared, Scope: []string{"view"}, ValidFrom: from, ValidUntil: until, Status: st,
			CreatedBy: by, CreatedAt: from.AddDate(0, 0, -1), AcceptedAt: &from, Version: 1,
			History: []delegation.Event{{Seq: 1, Type: delegation.EventOffered, At: from.AddDate(0, 0, -1), By: by, Status: st}}}
	}
	day := 24 * time.Hour
	cases := []struct {
		d    delegation.Delegation
		want error
		says string
	}{
		{rec("in-force", testNow.Add(-365*day), testNow.Add(365*day), delegation.StatusActive), nil, ""},
		{rec("expired", testNow.Add(-365*day), testNow.Add(-day), delegation.StatusActive), ErrInvalid, "is expired"},
		{rec("ends-now", testNow.Add(-365*day), testNow, delegation.StatusActive), ErrInvalid, "is expired"},
		{rec("not-yet", testNow.Add(day), testNow.Add(365*day), delegation.StatusActive), ErrInvalid, "is not_yet_valid"},
		{rec("suspended", testNow.Add(-365*day), testNow.Add(365*day), delegation.StatusSuspended), ErrInvalid, "is suspended"},
	}
	var all []delegation.Delegation
	for _, c := range cases {
		all = append(all, c.d)
	}
	if err := dels.Import(ctx, all); err != nil {
		t.Fatal(err)
	}
	st, err := OpenFile(filepath.Join(dir, "r.jsonl"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc, err := NewService(ctx, Config{Store: st, Activity: LedgerActivity{openLedger(t, cst)}, Delegations: dels,
		ReconfirmApplications: []string{"banking"}, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.d.ID, func(t *testing.T) {
			_, err := svc.ReconfirmDelegation(ctx, ReconfirmRequest{Delegation: c.d.ID, By: Actor{Application: "banking", Subject: Ref{Type: "user", ID: "alice"}}})
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if err != nil && !strings.Contains(err.Error(), c.says) {
				t.Fatalf("%v does not say %q", err, c.says)
			}
			if _, ok := svc.Latest(dormancy.DelegationKey(c.d.ID)); ok != (c.want == nil) {
				t.Fatalf("re-confirmation in force: %v", ok)
			}
		})
	}
}
