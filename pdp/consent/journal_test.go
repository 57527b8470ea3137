package consent

import (
	"context"
	"errors"
	"testing"
)

// memJournal keeps what a Ledger journals; fail makes RecordConsent fail
// (the trail unavailable).
type memJournal struct {
	fail       bool
	recorded   []Change
	notApplied []Change
}

func (j *memJournal) RecordConsent(_ context.Context, c Change) error {
	if j.fail {
		return errors.New("trail: no space left on device")
	}
	j.recorded = append(j.recorded, c)
	return nil
}

func (j *memJournal) ConsentNotApplied(_ context.Context, c Change, _ error) error {
	j.notApplied = append(j.notApplied, c)
	return nil
}

// failingAppends fails every Append (the store write after the record).
type failingAppends struct{ *FileStore }

func (failingAppends) Append(context.Context, Event) (Event, error) {
	return Event{}, errors.New("disk on fire")
}

// TestJournalWriteAhead: every change is journalled before it is appended,
// with its events as stored (but their positions); a change whose record
// fails is refused with ErrNotRecorded and appends nothing; recorded
// events whose append fails are journalled as not applied.
func TestJournalWriteAhead(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		ctx := context.Background()
		j := &memJournal{}
		e := newLenv(t, st, sfx, func(c *LedgerConfig) { c.Journal = j })
		alice := e.user("alice")
		grant := e.give(advice(alice))
		if len(j.recorded) != 1 || j.recorded[0].Action != "consent.give" || len(j.recorded[0].Events) != 1 {
			t.Fatalf("journalled %+v, want one give", j.recorded)
		}
		rec := j.recorded[0].Events[0]
		rec.Position = grant.Position
		if got, want := jsonOf(t, rec), jsonOf(t, grant); got != want {
			t.Fatalf("journalled event\n %s\nstored\n %s", got, want)
		}

		j.fail = true
		head, _ := st.Head(ctx)
		tests := []struct {
			name string
			do   func() error
		}{
			{"withdraw", func() error {
				_, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "advisor-portal", Subject: alice, Purpose: "financial_advice"})
				return err
			}},
			{"give", func() error {
				_, _, err := e.l.Give(ctx, advice(e.user("bob")))
				return err
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := tt.do(); !errors.Is(err, ErrNotRecorded) {
					t.Fatalf("%s with the journal failing: %v, want ErrNotRecorded", tt.name, err)
				}
				if h, _ := st.Head(ctx); h != head {
					t.Fatalf("the ledger moved from %d to %d on a refused %s", head, h, tt.name)
				}
				if res := e.check(alice, "financial_advice", "advisor-portal", "DE"); !res.Allowed {
					t.Fatalf("after a refused %s: %+v, want the grant in force", tt.name, res)
				}
			})
		}
	})
	t.Run("not applied", func(t *testing.T) {
		fst, _ := openFileT(t)
		j := &memJournal{}
		e := newLenv(t, failingAppends{fst.(*FileStore)}, "", func(c *LedgerConfig) { c.Journal = j })
		if _, _, err := e.l.Give(context.Background(), advice(e.user("alice"))); err == nil {
			t.Fatal("Give on a failing store: no error")
		}
		if len(j.recorded) != 1 || len(j.notApplied) != 1 || j.notApplied[0].Events[0].ID != j.recorded[0].Events[0].ID {
			t.Fatalf("recorded %+v, not applied %+v: want the give in both", j.recorded, j.notApplied)
		}
	})
}
