package consent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// replica opens a second store on the test database (another PDP replica).
func replica(t *testing.T) Store {
	t.Helper()
	s, err := OpenPostgres(context.Background(), pgURI(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestPostgresReplicas: ledger B sees ledger A's withdrawal on its next
// Check; a ledger with a FreshnessInterval may answer from older state,
// but not CheckAt with the withdrawal's position.
func TestPostgresReplicas(t *testing.T) {
	stA, sfx := openPostgresT(t)
	stB := replica(t)
	a, b := newLenv(t, stA, sfx), newLenv(t, stB, sfx)
	lazy := newLenv(t, stB, sfx, func(c *LedgerConfig) { c.FreshnessInterval = time.Hour })
	ctx := context.Background()
	alice := a.user("alice")
	q := CheckQuery{Subject: alice, Purpose: "financial_advice", Application: "advisor-portal", Jurisdiction: "DE", Now: ledgerToday}

	g := a.give(advice(alice))
	if res := b.check(alice, "financial_advice", "advisor-portal", "DE"); !res.Allowed || res.Position < g.Position {
		t.Fatalf("B after A's Give: %+v", res)
	}
	w, err := a.l.Withdraw(ctx, WithdrawRequest{Application: "advisor-portal", Subject: alice, GrantID: g.GrantID})
	if err != nil {
		t.Fatal(err)
	}
	if res := b.check(alice, "financial_advice", "advisor-portal", "DE"); res.Allowed || res.Reason != ReasonConsentWithdrawn || res.Position < w[0].Position {
		t.Errorf("B's next Check after A's withdrawal at %d: %+v", w[0].Position, res)
	}
	// The lazy ledger loaded before the give: within its interval it does
	// not ask, but CheckAt catches up to the position it is given.
	if res, err := lazy.l.Check(ctx, q); err != nil || res.Allowed || res.Reason != ReasonConsentMissing {
		t.Errorf("lazy Check within its interval: %+v, %v (want the state it loaded)", res, err)
	}
	if res, err := lazy.l.CheckAt(ctx, q, w[0].Position); err != nil || res.Reason != ReasonConsentWithdrawn || res.Position < w[0].Position {
		t.Errorf("lazy CheckAt(%d): %+v, %v", w[0].Position, res, err)
	}
	// B writes against A's grants: it catches up before it validates.
	g2 := a.give(advice(alice))
	if _, err := b.l.Withdraw(ctx, WithdrawRequest{Application: "advisor-portal", Subject: alice, GrantID: g2.GrantID}); err != nil {
		t.Fatalf("B withdraws A's new grant: %v", err)
	}
	if _, err := a.l.Withdraw(ctx, WithdrawRequest{Application: "advisor-portal", Subject: alice, GrantID: g2.GrantID}); statusOf(err) != 422 {
		t.Errorf("A withdraws it again: %v, want 422 (already ended)", err)
	}
	if res := a.check(alice, "financial_advice", "advisor-portal", "DE"); res.Allowed {
		t.Errorf("A after B's withdrawal: %+v", res)
	}
}

// TestPostgresAppendOrder: appends from two stores at once commit in
// position order, so a follower reading "position > head" skips nothing.
func TestPostgresAppendOrder(t *testing.T) {
	stA, sfx := openPostgresT(t)
	stB := replica(t)
	ctx := context.Background()
	subject := Ref{"user", "order" + sfx}
	start, err := stA.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		done = make(chan struct{})
		seen = map[string]bool{}
		head = start
		errs = make(chan error, 100)
	)
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	follow := func() {
		evs, err := stB.(Scanner).EventsAfter(fctx, head, 1000)
		if err != nil {
			if fctx.Err() == nil {
				errs <- err
			}
			return
		}
		for _, e := range evs {
			if strings.HasSuffix(e.Subject.ID, sfx) {
				seen[e.ID] = true
			}
			head = e.Position
		}
	}
	go func() {
		defer close(done)
		for fctx.Err() == nil {
			follow()
			if len(seen) == 80 {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for w, st := range []Store{stA, stB, stA, stB} {
		wg.Go(func() {
			for i := range 20 {
				if _, err := st.Append(ctx, storeEvent(fmt.Sprintf("cev-%d-%d%s", w, i, sfx), subject, EventRefused, "marketing", ledgerToday)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	<-done
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != 80 {
		t.Errorf("the follower saw %d of 80 events", len(seen))
	}
}

// TestPostgresDormancyAcrossReplicas: a subject dormant in B's memory, but
// active since on A, is not sent to revalidate by B.
func TestPostgresDormancyAcrossReplicas(t *testing.T) {
	stA, sfx := openPostgresT(t)
	a := newLenv(t, stA, sfx)
	ctx := context.Background()
	heidi := a.user("heidi")
	if err := a.l.Import(ctx, northbankSeed(sfx)); err != nil {
		t.Fatal(err)
	}
	if err := a.l.ImportActivity(ctx, map[string]time.Time{heidi.String(): ymd(2023, 1, 10)}); err != nil {
		t.Fatal(err)
	}
	b := newLenv(t, replica(t), sfx)
	if res := b.check(heidi, "marketing", "marketing-hub", "DE"); res.Reason != ReasonRevalidationRequired {
		t.Fatalf("heidi on B: %+v", res)
	}
	a.l.Touch(heidi, ymd(2026, 11, 1))
	if err := a.l.FlushActivity(ctx); err != nil {
		t.Fatal(err)
	}
	if res := b.check(heidi, "marketing", "marketing-hub", "DE"); !res.Allowed {
		t.Errorf("heidi on B after A saw her: %+v", res)
	}
}

func TestOpenPostgresBadURI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := OpenPostgres(ctx, "postgres://nobody:x@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"); err == nil {
		t.Error("OpenPostgres to a closed port: no error")
	}
}
