package consent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// storeEvent is an event as the Ledger would append it.
func storeEvent(id string, subject Ref, typ EventType, purpose string, at time.Time) Event {
	e := Event{
		ID: id, Type: typ, Subject: subject, Actor: subject, Application: "advisor-portal",
		Purpose: purpose, PurposeVersion: 1, Jurisdiction: "DE", At: at,
		Notice: Notice{URI: "https://northbank.example/privacy", Version: 2},
	}
	if typ == EventGiven {
		e.GrantID = id
		e.Applications = []string{"advisor-portal"}
		e.Expires = timep(at.Add(24 * time.Hour))
	}
	return e
}

func TestStoreAppendPositions(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		ctx := context.Background()
		alice, bob := Ref{"user", "alice" + sfx}, Ref{"user", "bob" + sfx}
		var stored []Event
		for i := range 6 {
			who := alice
			if i%2 == 1 {
				who = bob
			}
			e := storeEvent(fmt.Sprintf("cev-%d%s", i, sfx), who, EventGiven, "financial_advice", ledgerToday.Add(time.Duration(i)*time.Minute))
			if i == 0 {
				e.RecordedAt = ymd(2026, 1, 2) // kept when given
			}
			got, err := st.Append(ctx, e)
			if err != nil {
				t.Fatalf("Append %d: %v", i, err)
			}
			if i > 0 && got.Position <= stored[i-1].Position {
				t.Errorf("position %d after %d: not strictly increasing", got.Position, stored[i-1].Position)
			}
			if got.RecordedAt.IsZero() {
				t.Errorf("Append %d: RecordedAt not set", i)
			}
			stored = append(stored, got)
		}
		if !stored[0].RecordedAt.Equal(ymd(2026, 1, 2)) {
			t.Errorf("RecordedAt given = %v, not kept", stored[0].RecordedAt)
		}
		head, err := st.Head(ctx)
		if err != nil || head < stored[5].Position {
			t.Errorf("Head = %d, %v; want at least %d", head, err, stored[5].Position)
		}
		evs, err := st.Events(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		want := []Event{stored[0], stored[2], stored[4]}
		if jsonOf(t, evs) != jsonOf(t, want) {
			t.Errorf("Events(alice) =\n%s\nwant\n%s", jsonOf(t, evs), jsonOf(t, want))
		}
		got, err := st.Event(ctx, stored[3].ID)
		if err != nil || jsonOf(t, got) != jsonOf(t, stored[3]) {
			t.Errorf("Event = %s, %v; want %s", jsonOf(t, got), err, jsonOf(t, stored[3]))
		}
		// What the caller holds is a copy.
		got.Applications[0] = "changed"
		if again, _ := st.Event(ctx, stored[3].ID); again.Applications[0] != "advisor-portal" {
			t.Error("the store shares memory with its callers")
		}
		if _, err := st.Event(ctx, "cev-missing"+sfx); !errors.Is(err, ErrNotFound) {
			t.Errorf("Event(missing) = %v, want ErrNotFound", err)
		}
		if _, err := st.Append(ctx, storeEvent(stored[1].ID, bob, EventRefused, "marketing", ledgerToday)); !errors.Is(err, ErrExists) || !errors.Is(err, ErrConflict) {
			t.Errorf("Append with a taken id = %v, want ErrExists (matching ErrConflict)", err)
		}
		if _, err := st.Append(ctx, Event{ID: "cev-x" + sfx, Type: EventGiven}); err == nil {
			t.Error("Append without a subject: no error")
		}
		// Scanner: the events after a position, in order, limited.
		after, err := st.(Scanner).EventsAfter(ctx, stored[1].Position, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != 2 || after[0].Position <= stored[1].Position || after[1].Position <= after[0].Position {
			t.Errorf("EventsAfter(%d, 2) = positions %v", stored[1].Position, positions(after))
		}
	})
}

func positions(es []Event) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Position
	}
	return out
}

func TestStoreConcurrentAppends(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		ctx := context.Background()
		subject := Ref{"user", "many" + sfx}
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for w := range 4 {
			wg.Go(func() {
				for i := range 10 {
					e := storeEvent(fmt.Sprintf("cev-%d-%d%s", w, i, sfx), subject, EventGiven, "marketing", ledgerToday)
					if _, err := st.Append(ctx, e); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		evs, err := st.Events(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		pos := positions(evs)
		if len(pos) != 40 || !slices.IsSorted(pos) || len(slices.Compact(slices.Clone(pos))) != 40 {
			t.Errorf("40 concurrent appends: positions %v", pos)
		}
	})
}

func TestStoreActivity(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		ctx := context.Background()
		heidi := Ref{"user", "heidi" + sfx}
		if _, ok, err := st.Activity(ctx, heidi); ok || err != nil {
			t.Errorf("Activity before any = %v, %v", ok, err)
		}
		t1, t0 := ymd(2023, 1, 10), ymd(2022, 5, 1)
		for _, at := range []time.Time{t1, t0} {
			if err := st.SetActivity(ctx, heidi, at); err != nil {
				t.Fatal(err)
			}
		}
		at, ok, err := st.Activity(ctx, heidi)
		if err != nil || !ok || !at.Equal(t1) {
			t.Errorf("Activity = %v, %v, %v; want %v (it never moves back)", at, ok, err, t1)
		}
		all, err := st.(Scanner).AllActivity(ctx)
		if err != nil || !all[heidi].Equal(t1) {
			t.Errorf("AllActivity[heidi] = %v, %v", all[heidi], err)
		}
	})
}
