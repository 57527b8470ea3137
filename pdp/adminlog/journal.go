// Package adminlog keeps delegation and consent changes, received risk
// signals and dormancy revalidations in the decision trail as write-ahead
// records (the Journal of delegation.Service, consent.Ledger,
// signalledger.Ledger and revalidation.Service), and compares the stores
// with those records: CheckStores (the start-up check of 'pdp serve')
// names every change the trail holds and a store lacks, and RepairStores
// applies those changes from the trail.
package adminlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
)

// Actions of the records this package writes besides the changes
// themselves ("delegation.offer", …, "consent.give", …).
const (
	// ActionDelegationNotApplied: a recorded delegation change did not
	// reach the store (detail: the action, id, version and digest).
	ActionDelegationNotApplied = "delegation.not_applied"
	// ActionConsentNotApplied: recorded consent events did not reach the
	// ledger (detail: the action and the event ids).
	ActionConsentNotApplied = "consent.not_applied"
	// ActionRepair: 'pdp repair' applied changes from the trail to a store.
	ActionRepair = "store.repair"
)

// Recorder writes an admin record into the trail, durably, before it
// returns: *recorder.Recorder.
type Recorder interface {
	RecordAdmin(ctx context.Context, action, application, target string, detail any) error
}

// Journal is the write-ahead journal of the delegation service and the
// consent ledger, in the decision trail. Until Set gives it a Recorder
// (the trail opens after the stores) it records nothing; with the trail
// off it stays so.
type Journal struct {
	rec atomic.Pointer[Recorder]
}

var (
	_ delegation.Journal = (*Journal)(nil)
	_ consent.Journal    = (*Journal)(nil)
)

// Set makes the journal record through r from now on.
func (j *Journal) Set(r Recorder) { j.rec.Store(&r) }

func (j *Journal) recorder() Recorder {
	if p := j.rec.Load(); p != nil {
		return *p
	}
	return nil
}

// delegationDetail is the detail of a delegation change record: who, why,
// and the record after the change.
type delegationDetail struct {
	By         delegation.Actor      `json:"by"`
	Reason     string                `json:"reason,omitempty"`
	Delegation delegation.Delegation `json:"delegation"`
}

// NotAppliedTimeout bounds the write of a not_applied record.
const NotAppliedTimeout = 10 * time.Second

// notAppliedContext is the context a not_applied record is written under:
// the caller's values without its cancellation (a client that hung up
// after the change was recorded must not leave the change demanded from
// the store, to be applied by 'pdp repair' after the client was told it
// was not), bounded by NotAppliedTimeout.
func notAppliedContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), NotAppliedTimeout)
}

// notAppliedDetail is the detail of a not_applied record.
type notAppliedDetail struct {
	Action string `json:"action"`
	// ID and Version name a delegation change (ID alone a revalidation);
	// Digest tells it from another replica's change of the same version.
	ID      string `json:"id,omitempty"`
	Version int    `json:"version,omitempty"`
	Digest  string `json:"digest,omitempty"`
	// Events name consent events.
	Events []string `json:"events,omitempty"`
	// Transmitter and JTI name a received SET.
	Transmitter string `json:"transmitter,omitempty"`
	JTI         string `json:"jti,omitempty"`
	Cause       string `json:"cause"`
}

// digest identifies one delegation record exactly.
func digest(d delegation.Delegation) string {
	b, _ := json.Marshal(d)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// RecordDelegation implements delegation.Journal.
func (j *Journal) RecordDelegation(ctx context.Context, c delegation.Change) error {
	r := j.recorder()
	if r == nil {
		return nil
	}
	return r.RecordAdmin(ctx, c.Action, c.By.Application, c.Delegation.ID,
		delegationDetail{By: c.By, Reason: c.Reason, Delegation: c.Delegation})
}

// DelegationNotApplied implements delegation.Journal.
func (j *Journal) DelegationNotApplied(ctx context.Context, c delegation.Change, cause error) error {
	r := j.recorder()
	if r == nil {
		return nil
	}
	ctx, cancel := notAppliedContext(ctx)
	defer cancel()
	return r.RecordAdmin(ctx, ActionDelegationNotApplied, c.By.Application, c.Delegation.ID, notAppliedDetail{
		Action: c.Action, ID: c.Delegation.ID, Version: c.Delegation.Version, Digest: digest(c.Delegation), Cause: cause.Error(),
	})
}

// consentDetail is the detail of a consent change record.
type consentDetail struct {
	Events []consent.Event `json:"events"`
}

// RecordConsent implements consent.Journal.
func (j *Journal) RecordConsent(ctx context.Context, c consent.Change) error {
	r := j.recorder()
	if r == nil || len(c.Events) == 0 {
		return nil
	}
	return r.RecordAdmin(ctx, c.Action, c.Application, c.Events[0].Subject.String(), consentDetail{Events: c.Events})
}

// ConsentNotApplied implements consent.Journal.
func (j *Journal) ConsentNotApplied(ctx context.Context, c consent.Change, cause error) error {
	r := j.recorder()
	if r == nil || len(c.Events) == 0 {
		return nil
	}
	ids := make([]string, len(c.Events))
	for i, e := range c.Events {
		ids[i] = e.ID
	}
	ctx, cancel := notAppliedContext(ctx)
	defer cancel()
	return r.RecordAdmin(ctx, ActionConsentNotApplied, c.Application, c.Events[0].Subject.String(),
		notAppliedDetail{Action: c.Action, Events: ids, Cause: cause.Error()})
}
