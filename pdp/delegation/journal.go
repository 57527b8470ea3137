package delegation

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotRecorded: the change could not be recorded in the journal (the
// decision trail) before it was applied, so nothing was changed. Callers
// answer it as the trail being unavailable (trail_unavailable).
var ErrNotRecorded = errors.New("the change could not be recorded in the decision trail, so nothing was changed")

// Journal records every change a Service makes, before it is applied
// (write-ahead): a change whose record fails is not applied, and a record
// holds everything needed to apply its change again (the record after the
// change). Changes the Service derives from another (the revocation of
// sub-delegations, Reconcile, Import) are not journalled: Reconcile
// derives them again from the records.
type Journal interface {
	// RecordDelegation makes c durable; an error leaves nothing changed.
	RecordDelegation(ctx context.Context, c Change) error
	// DelegationNotApplied records that a change RecordDelegation took was
	// not applied after all (its store write failed), and why.
	DelegationNotApplied(ctx context.Context, c Change, cause error) error
}

// Change is one journalled change of a delegation record.
type Change struct {
	// Action is "delegation." and the verb: offer, accept, revoke,
	// renounce, suspend or resume.
	Action string `json:"-"`
	By     Actor  `json:"by"`
	Reason string `json:"reason,omitempty"`
	// Delegation is the record after the change, as it is stored.
	Delegation Delegation `json:"delegation"`
}

// journal records c before it is applied (nothing without a Journal).
func (s *Service) journal(ctx context.Context, c Change) error {
	if s.jrn == nil {
		return nil
	}
	if err := s.jrn.RecordDelegation(ctx, c); err != nil {
		s.log.ErrorContext(ctx, "delegation change not recorded in the decision trail; not applied",
			"action", c.Action, "id", c.Delegation.ID, "error", err)
		return fmt.Errorf("%s %s: %w: %w", c.Action, c.Delegation.ID, ErrNotRecorded, err)
	}
	return nil
}

// notApplied records that a journalled change failed to reach the store.
func (s *Service) notApplied(ctx context.Context, c Change, cause error) {
	if s.jrn == nil {
		return
	}
	if err := s.jrn.DelegationNotApplied(ctx, c, cause); err != nil {
		// The trail claims a change the store lacks: the start-up check
		// names it and 'pdp repair' applies it.
		s.log.ErrorContext(ctx, "delegation change recorded but not applied, and that could not be recorded either",
			"action", c.Action, "id", c.Delegation.ID, "version", c.Delegation.Version, "cause", cause, "error", err)
	}
}
