package consent

import (
	"context"
	"testing"
	"time"
)

// TestLastActiveAcrossStores: the dormancy guard's reads of activity.
// Touch stays in memory until a flush (a batch upsert on PostgreSQL); with
// an exclusive file store memory is the answer; with a shared store a ref
// that looks idle past the horizon in memory is read from the store, so
// another writer's flushed activity is seen.
func TestLastActiveAcrossStores(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newLenv(t, st, sfx)
		ctx := context.Background()
		heidi, agent := e.user("heidi"), Ref{Type: "delegation#agent", ID: "poa" + sfx}
		subject := Ref{Type: "user#subject", ID: "heidi" + sfx}
		old, recent := ymd(2023, 1, 10), ledgerToday.Add(-time.Hour)
		for _, r := range []Ref{heidi, agent, subject} {
			e.l.Touch(r, old)
		}
		if err := e.l.FlushActivity(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := st.Activities(ctx, []Ref{heidi, agent, subject})
		if err != nil || len(got) != 3 || !got[agent].Equal(old) {
			t.Fatalf("flushed: %v %v", got, err)
		}
		// Another writer (a replica) saw heidi since: only the store knows.
		if err := st.SetActivity(ctx, heidi, recent); err != nil {
			t.Fatal(err)
		}
		last, err := e.l.LastActive(ctx, []Ref{heidi, agent, e.user("nobody")}, ledgerToday, 365*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		_, excl := st.(exclusive)
		want := recent
		if excl {
			want = old // one process owns the file: memory is the record
		}
		if !last[heidi].Equal(want) || !last[agent].Equal(old) || len(last) != 2 {
			t.Fatalf("last active: %v (exclusive %v)", last, excl)
		}
		snap, err := e.l.ActivitySnapshot(ctx)
		if err != nil || !snap[subject].Equal(old) || !snap[heidi].Equal(want) {
			t.Fatalf("snapshot: %v %v", snap[heidi], err)
		}
		// A batch never moves activity back.
		e.l.Touch(agent, ymd(2020, 1, 1))
		e.l.Touch(subject, recent)
		if err := e.l.FlushActivity(ctx); err != nil {
			t.Fatal(err)
		}
		got, _ = st.Activities(ctx, []Ref{agent, subject})
		if !got[agent].Equal(old) || !got[subject].Equal(recent) {
			t.Fatalf("after a second flush: %v", got)
		}
		if b, ok := st.(activityBatcher); ok {
			if _, err := b.SetActivities(ctx, map[Ref]time.Time{agent: ymd(2020, 1, 1), heidi: ymd(2020, 1, 1)}); err != nil {
				t.Fatal(err)
			}
			if got, _ = st.Activities(ctx, []Ref{agent, heidi}); !got[agent].Equal(old) || !got[heidi].Equal(recent) {
				t.Fatalf("a batch moved activity back: %v", got)
			}
		}
	})
}
