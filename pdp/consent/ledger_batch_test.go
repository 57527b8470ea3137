package consent

import (
	"context"
	"testing"
	"time"
)

// TestCheckBatch: every store answers a batch of checks (subjects and
// purposes repeated, unknown ones among them) as it answers each check
// alone, and reads the activity of many subjects at once.
func TestCheckBatch(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newLenv(t, st, sfx)
		ctx := context.Background()
		if err := e.l.Import(ctx, northbankSeed(sfx)); err != nil {
			t.Fatal(err)
		}
		heidi, alice := e.user("heidi"), e.user("alice")
		if err := e.l.ImportActivity(ctx, map[string]time.Time{heidi.String(): ymd(2023, 1, 10), alice.String(): ymd(2026, 11, 1)}); err != nil {
			t.Fatal(err)
		}
		q := func(subject, purpose, app string) CheckQuery {
			return CheckQuery{Subject: e.user(subject), Purpose: purpose, Application: app, Jurisdiction: "DE", Now: e.clock.Now()}
		}
		qs := []CheckQuery{
			q("alice", "account_information_sharing", "budget-app"),
			q("judy", "account_information_sharing", "budget-app"),
			q("heidi", "marketing", "marketing-hub"),
			q("carol", "marketing", "marketing-hub"),
			q("alice", "financial_advice", "advisor-portal"),
			q("nobody", "marketing", "marketing-hub"),
			q("alice", "account_information_sharing", "budget-app"),
		}
		got, err := e.l.CheckBatch(ctx, qs)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(qs) {
			t.Fatalf("%d results for %d queries", len(got), len(qs))
		}
		for i, q := range qs {
			want, err := e.l.Check(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if jsonOf(t, got[i]) != jsonOf(t, want) {
				t.Errorf("query %d (%s %s): batch %s, alone %s", i, q.Subject, q.Purpose, jsonOf(t, got[i]), jsonOf(t, want))
			}
		}
		if !got[0].Allowed || got[2].Reason != ReasonRevalidationRequired {
			t.Errorf("alice %+v, heidi %+v", got[0], got[2])
		}

		act, err := st.Activities(ctx, []Ref{heidi, alice, e.user("nobody")})
		if err != nil {
			t.Fatal(err)
		}
		if len(act) != 2 || !act[heidi].Equal(ymd(2023, 1, 10)) || !act[alice].Equal(ymd(2026, 11, 1)) {
			t.Errorf("Activities = %v", act)
		}
	})
}

// TestCheckBatchDormancyAcrossReplicas: in a batch, a subject dormant in
// B's memory but active since on A is read from the store (one read for
// the batch) and not sent to revalidate.
func TestCheckBatchDormancyAcrossReplicas(t *testing.T) {
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
	batch := func() []CheckResult {
		t.Helper()
		q := CheckQuery{Subject: heidi, Purpose: "marketing", Application: "marketing-hub", Jurisdiction: "DE", Now: b.clock.Now()}
		rs, err := b.l.CheckBatch(ctx, []CheckQuery{q, q})
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	if rs := batch(); rs[0].Reason != ReasonRevalidationRequired || rs[1].Reason != ReasonRevalidationRequired {
		t.Fatalf("heidi on B: %+v", rs)
	}
	a.l.Touch(heidi, ymd(2026, 11, 1))
	if err := a.l.FlushActivity(ctx); err != nil {
		t.Fatal(err)
	}
	if rs := batch(); !rs[0].Allowed || !rs[1].Allowed {
		t.Errorf("heidi on B after A saw her: %+v", rs)
	}
}
