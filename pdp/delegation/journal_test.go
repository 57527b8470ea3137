package delegation

import (
	"context"
	"errors"
	"testing"
)

// memJournal keeps what a Service journals; fail makes RecordDelegation
// fail (the trail unavailable).
type memJournal struct {
	fail       bool
	recorded   []Change
	notApplied []Change
}

func (j *memJournal) RecordDelegation(_ context.Context, c Change) error {
	if j.fail {
		return errors.New("trail: no space left on device")
	}
	j.recorded = append(j.recorded, c)
	return nil
}

func (j *memJournal) DelegationNotApplied(_ context.Context, c Change, _ error) error {
	j.notApplied = append(j.notApplied, c)
	return nil
}

// failingUpdates fails every Update (the store write after the record).
type failingUpdates struct{ Store }

func (failingUpdates) Update(context.Context, Delegation, int) error {
	return errors.New("disk on fire")
}

// TestJournalWriteAhead: every change is journalled before it is applied,
// with the record as stored; a change whose record fails is refused with
// ErrNotRecorded and changes nothing; a recorded change whose store write
// fails is journalled as not applied.
func TestJournalWriteAhead(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		ctx := context.Background()
		e := newEnv(t, st, sfx)
		j := &memJournal{}
		e.svc.jrn = j
		d := e.poa(e.user("alice"), e.user("bob"), []string{"view_statements"}, 0)
		if len(j.recorded) != 2 || j.recorded[0].Action != "delegation.offer" || j.recorded[1].Action != "delegation.accept" {
			t.Fatalf("journalled %v, want an offer and an accept", j.recorded)
		}
		if got, want := jsonOf(t, j.recorded[1].Delegation), jsonOf(t, e.get(d.ID)); got != want {
			t.Fatalf("journalled record\n %s\nstored\n %s", got, want)
		}

		j.fail = true
		tests := []struct {
			name string
			do   func() error
		}{
			{"suspend", func() error {
				_, _, err := e.svc.Suspend(ctx, d.ID, as(e.user("alice")), "test")
				return err
			}},
			{"revoke", func() error {
				_, _, err := e.svc.Revoke(ctx, d.ID, as(e.user("alice")), "test")
				return err
			}},
			{"offer", func() error {
				_, _, err := e.svc.Offer(ctx, OfferRequest{ID: "dlg-unrecorded" + sfx, By: Actor{Application: register.Application, Subject: e.user("alice")},
					Principal: e.user("alice"), Agent: e.user("carol"), Basis: BasisPowerOfAttorney,
					Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2030, 1, 1)})
				return err
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := tt.do(); !errors.Is(err, ErrNotRecorded) {
					t.Fatalf("%s with the journal failing: %v, want ErrNotRecorded", tt.name, err)
				}
				if got := e.get(d.ID); got.Status != StatusActive || got.Version != d.Version {
					t.Fatalf("after a refused %s: %s version %d, want it unchanged", tt.name, got.Status, got.Version)
				}
				if _, err := st.Get(ctx, "dlg-unrecorded"+sfx); !errors.Is(err, ErrNotFound) {
					t.Fatalf("an unrecorded offer was stored: %v", err)
				}
			})
		}

		j.fail = false
		broken := NewService(Config{Store: failingUpdates{st}, Now: e.clock.Now, Journal: j})
		if _, _, err := broken.Suspend(ctx, d.ID, as(e.user("alice")), "test"); err == nil {
			t.Fatal("Suspend on a failing store: no error")
		}
		if n := len(j.notApplied); n != 1 || j.notApplied[0].Action != "delegation.suspend" ||
			j.notApplied[0].Delegation.Version != d.Version+1 {
			t.Fatalf("not applied: %v, want the suspend at version %d", j.notApplied, d.Version+1)
		}
	})
}
