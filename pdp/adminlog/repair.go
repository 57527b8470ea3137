package adminlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
)

// DelegationStore is what Repair writes delegation records to.
type DelegationStore interface {
	Delegations
	Create(ctx context.Context, d delegation.Delegation) error
	Update(ctx context.Context, d delegation.Delegation, prevVersion int) error
}

// ConsentStore is what Repair appends consent events to.
type ConsentStore interface {
	Events
	Append(ctx context.Context, e consent.Event) (consent.Event, error)
}

// repairDetail is the detail of the ActionRepair record.
type repairDetail struct {
	Applied []repaired `json:"applied"`
	Failed  []string   `json:"failed,omitempty"`
}

type repaired struct {
	Seq     uint64 `json:"seq"` // the trail record the change came from
	Action  string `json:"action"`
	Kind    string `json:"kind"`
	ID      string `json:"id"`
	Version int    `json:"version,omitempty"`
	// Transmitter names a signal's sender (its ID is the jti).
	Transmitter string `json:"transmitter,omitempty"`
}

// Writers are the stores RepairStores writes to; a nil one is not open
// (its missing changes fail).
type Writers struct {
	Delegations   DelegationStore
	Consent       ConsentStore
	Signals       SignalStore
	Revalidations RevalidationStore
}

// Stores are the stores of w as the check reads them (a store w leaves
// nil is off): 'pdp repair' checks exactly what it repairs.
func (w Writers) Stores() Stores {
	return Stores{Delegations: w.Delegations, Events: w.Consent, Signals: w.Signals, Revalidations: w.Revalidations}
}

// Repair is RepairStores of the delegation records and the consent ledger.
func Repair(ctx context.Context, rep Report, ds DelegationStore, cs ConsentStore, rec Recorder) ([]Missing, error) {
	return RepairStores(ctx, rep, Writers{Delegations: ds, Consent: cs}, rec)
}

// RepairStores applies the missing changes of rep, in trail order: a
// delegation record is written as the trail holds it (created, or
// replacing the older version the store has); a consent event, a received
// SET's events and a revalidation are appended again (at new positions,
// with their original ids and times). A change that a store now has is
// left alone, so Repair may run again after a failure. When rec is not nil
// it records what was applied in the trail (ActionRepair), as
// application "pdp-repair". It returns the changes applied.
func RepairStores(ctx context.Context, rep Report, w Writers, rec Recorder) ([]Missing, error) {
	return applyMissing(ctx, rep, w, rec, RepairApplication)
}

// RepairApplication is the application of the ActionRepair records 'pdp
// repair' writes; StartApplication that of those a start writes when it
// makes implied revalidations (MakeImplied).
const (
	RepairApplication = "pdp-repair"
	StartApplication  = "pdp-start"
)

// MakeImplied makes the implied revalidations (Report.Implied) in rs, as
// RepairStores does (the same derived ids: made once however often it
// runs, and not again when rs holds one of the same source), recorded in
// the trail as an ActionRepair record of application StartApplication.
// It returns the ones made.
func MakeImplied(ctx context.Context, implied []Missing, rs RevalidationStore, rec Recorder) ([]Missing, error) {
	for _, m := range implied {
		if !m.Implied || m.Revalidation == nil {
			return nil, fmt.Errorf("%s: not an implied revalidation", m)
		}
	}
	return applyMissing(ctx, Report{Missing: implied}, Writers{Revalidations: rs}, rec, StartApplication)
}

// applyMissing is RepairStores recording its ActionRepair record as
// application.
func applyMissing(ctx context.Context, rep Report, w Writers, rec Recorder, application string) ([]Missing, error) {
	ds, cs := w.Delegations, w.Consent
	var (
		applied []Missing
		detail  repairDetail
		errs    []error
	)
	for _, m := range rep.Missing {
		var err error
		switch {
		case m.Redacted:
			err = errors.New("the trail holds it with redacted values: restore this store from a backup")
		case m.Delegation != nil && ds != nil:
			err = restoreDelegation(ctx, ds, *m.Delegation)
		case m.Event != nil && cs != nil:
			err = restoreEvent(ctx, cs, *m.Event)
		case m.Signal != nil && w.Signals != nil:
			err = restoreSignal(ctx, w.Signals, *m.Signal)
		case m.Revalidation != nil && w.Revalidations != nil:
			err = restoreRevalidation(ctx, w.Revalidations, *m.Revalidation)
		default:
			err = errors.New("its store is not open")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
			detail.Failed = append(detail.Failed, m.String()+": "+err.Error())
			continue
		}
		applied = append(applied, m)
		r := repaired{Seq: m.Seq, Action: m.Action, Kind: m.Kind(), ID: m.ID()}
		if m.Delegation != nil {
			r.Version = m.Delegation.Version
		}
		if m.Signal != nil {
			r.Transmitter = m.Signal.Transmitter
		}
		detail.Applied = append(detail.Applied, r)
	}
	if rec != nil && (len(detail.Applied) > 0 || len(detail.Failed) > 0) {
		if err := rec.RecordAdmin(ctx, ActionRepair, application, "", detail); err != nil {
			errs = append(errs, fmt.Errorf("record the repair in the decision trail: %w", err))
		}
	}
	return applied, errors.Join(errs...)
}

func restoreDelegation(ctx context.Context, ds DelegationStore, d delegation.Delegation) error {
	cur, err := ds.Get(ctx, d.ID)
	switch {
	case errors.Is(err, delegation.ErrNotFound):
		return ds.Create(ctx, d)
	case err != nil:
		return err
	case cur.Version >= d.Version:
		return nil // the store has it (or newer) by now
	}
	return ds.Update(ctx, d, cur.Version)
}

func restoreEvent(ctx context.Context, cs ConsentStore, e consent.Event) error {
	_, err := cs.Event(ctx, e.ID)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, consent.ErrNotFound):
		return err
	}
	e.Position = 0 // the store assigns the next one
	_, err = cs.Append(ctx, e)
	return err
}
