package adminlog

import (
	"context"
	"errors"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/signalledger"
	"github.com/ciampdp/pdp/pdp/signals"
)

// Actions of signal records.
const (
	// ActionSignalReceive: a SET was received (detail: its events as they
	// will be stored).
	ActionSignalReceive = "signal.receive"
	// ActionSignalNotApplied: a recorded SET did not reach the signal
	// ledger (detail: the action, transmitter, jti and the cause).
	ActionSignalNotApplied = "signal.not_applied"
)

var (
	_ signalledger.Journal           = (*Journal)(nil)
	_ signalledger.NotAppliedJournal = (*Journal)(nil)

	_ signalledger.RevalidatingJournal = (*Journal)(nil)
)

// signalDetail is the detail of a received SET's record: its jti and its
// events as they will be stored (the subject as received, the entity it
// maps to).
type signalDetail struct {
	Transmitter string          `json:"transmitter"`
	JTI         string          `json:"jti"`
	Events      []signals.Event `json:"events"`
	// Revalidates are the revalidations the events imply (the dormancy
	// rules in force when it was received).
	Revalidates []dormancy.SignalRevalidation `json:"revalidates,omitempty"`
}

// RecordSignal implements signalledger.Journal: the record's application
// is the transmitter, its target the first mapped entity (or the jti).
func (j *Journal) RecordSignal(ctx context.Context, transmitter, jti string, events []signals.Event) error {
	return j.RecordSignalRevalidating(ctx, transmitter, jti, events, nil)
}

// RecordSignalRevalidating implements signalledger.RevalidatingJournal:
// RecordSignal, naming the revalidations the events imply.
func (j *Journal) RecordSignalRevalidating(ctx context.Context, transmitter, jti string, events []signals.Event, revalidates []dormancy.SignalRevalidation) error {
	r := j.recorder()
	if r == nil {
		return nil
	}
	target := jti
	for _, e := range events {
		if e.Entity != "" {
			target = e.Entity
			break
		}
	}
	return r.RecordAdmin(ctx, ActionSignalReceive, transmitter, target, signalDetail{Transmitter: transmitter, JTI: jti, Events: events, Revalidates: revalidates})
}

// CauseDuplicate is the cause of a signal.not_applied record of a SET
// the shared store refused because another replica had stored its jti
// first.
const CauseDuplicate = "duplicate"

// SignalNotApplied implements signalledger.NotAppliedJournal: the SET
// recorded before was not stored (the start-up check then does not
// demand it), cause "duplicate" when another replica stored its jti
// first.
func (j *Journal) SignalNotApplied(ctx context.Context, transmitter, jti string, cause error) error {
	r := j.recorder()
	if r == nil {
		return nil
	}
	why := cause.Error()
	if errors.Is(cause, signalledger.ErrDuplicate) {
		why = CauseDuplicate
	}
	ctx, cancel := notAppliedContext(ctx)
	defer cancel()
	return r.RecordAdmin(ctx, ActionSignalNotApplied, transmitter, jti,
		notAppliedDetail{Action: ActionSignalReceive, Transmitter: transmitter, JTI: jti, Cause: why})
}
