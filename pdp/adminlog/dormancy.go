package adminlog

import (
	"context"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/revalidation"
)

// Actions of revalidation records.
const (
	// ActionRevalidate: an identity's dormancy ended (detail: the
	// revalidation, as it will be stored).
	ActionRevalidate = "dormancy.revalidate"
	// ActionReconfirm: a principal re-confirmed a dormant delegation.
	ActionReconfirm = "dormancy.reconfirm"
	// ActionRevalidationNotApplied: a recorded revalidation did not reach
	// its store (detail: the action, the revalidation's id and the cause).
	ActionRevalidationNotApplied = "dormancy.not_applied"
)

var (
	_ revalidation.Journal           = (*Journal)(nil)
	_ revalidation.NotAppliedJournal = (*Journal)(nil)
)

// revalidationDetail is the detail of a revalidation record.
type revalidationDetail struct {
	Revalidation dormancy.Revalidation `json:"revalidation"`
}

// RecordRevalidation implements revalidation.Journal.
func (j *Journal) RecordRevalidation(ctx context.Context, r dormancy.Revalidation) error {
	rec := j.recorder()
	if rec == nil {
		return nil
	}
	return rec.RecordAdmin(ctx, revalidationAction(r), r.By.Application, r.Key(), revalidationDetail{Revalidation: r})
}

// RevalidationNotApplied implements revalidation.NotAppliedJournal.
func (j *Journal) RevalidationNotApplied(ctx context.Context, r dormancy.Revalidation, cause error) error {
	rec := j.recorder()
	if rec == nil {
		return nil
	}
	ctx, cancel := notAppliedContext(ctx)
	defer cancel()
	return rec.RecordAdmin(ctx, ActionRevalidationNotApplied, r.By.Application, r.Key(),
		notAppliedDetail{Action: revalidationAction(r), ID: r.ID, Cause: cause.Error()})
}

// revalidationAction is the action of a revalidation's record: an
// identity's revalidation or a delegation's re-confirmation.
func revalidationAction(r dormancy.Revalidation) string {
	if r.Kind == dormancy.KindDelegation {
		return ActionReconfirm
	}
	return ActionRevalidate
}
