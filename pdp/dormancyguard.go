package pdp

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/policy"
)

// Dormancy is enforced by the engine like consent: when the bundle has
// dormancy rules (schema/dormancy.yaml), a principal inactive for longer
// than a rule allows is denied the rule's actions (revalidation_required,
// obligation identity_revalidation) or allowed the low-risk ones with
// step_up_authentication, and a delegation relied on that was not used for
// longer than its basis' rule allows is denied (delegation_dormant) until
// its principal re-confirms it — whatever the policies say. The findings,
// with the last activity as of the decision and the revalidation that
// ended a dormancy, are recorded in Decision.Dormancy: replay applies the
// guard again from them.

// DormancySource answers the dormancy guard (dormancy.Service) for every
// query of a batch at once, and takes note of an allowed decision's
// activity (principal, data subject, delegations used) once the
// decision's Pending is committed (its record is written). An error means the
// activity could not be read: the engine denies the queries of the call
// with facts_unavailable.
type DormancySource interface {
	States(ctx context.Context, qs []dormancy.Query) ([]dormancy.State, error)
	TouchDecision(principal, dataSubject dormancy.Ref, chain []string, at time.Time)
}

// dormancyQuery is the guard's question of a job; false when the bundle's
// rules cannot apply to it.
func dormancyQuery(b *policy.Bundle, rules *dormancy.Rules, j *job) (dormancy.Query, bool) {
	if rules == nil || j.done {
		return dormancy.Query{}, false
	}
	q := dormancy.Query{Principal: dormancy.Ref{Type: b.ObjectType(j.d.Input.Principal.Type), ID: string(j.d.Input.Principal.ID)}, Horizon: rules.Horizon(), Now: j.start}
	if p := j.d.Delegation; p != nil && p.Status == DelegationActive && len(p.Chain) > 0 {
		if _, ok := rules.Delegation(p.Basis); ok {
			q.Delegation = &dormancy.DelegationUse{ID: p.Chain[0], Basis: p.Basis, Since: p.Since}
		}
	}
	if !rules.AppliesTo(q.Principal.Type) && q.Delegation == nil {
		return dormancy.Query{}, false
	}
	return q, true
}

// resolveDormancy asks the dormancy source about every job the bundle's
// rules may apply to, in one call, and records the findings.
func (e *Engine) resolveDormancy(ctx context.Context, b *policy.Bundle, jobs []*job) {
	rules := b.Dormancy()
	if rules == nil {
		return
	}
	var (
		asking []*job
		qs     []dormancy.Query
	)
	for _, j := range jobs {
		if q, ok := dormancyQuery(b, rules, j); ok {
			asking = append(asking, j)
			qs = append(qs, q)
		}
	}
	if len(asking) == 0 {
		return
	}
	if e.dormancy == nil {
		for _, j := range asking {
			j.deny(ReasonFactsUnavailable, errors.New("dormancy rules apply but no activity record is configured (the consent ledger keeps it)"))
		}
		return
	}
	sts, err := e.dormancy.States(ctx, qs)
	if err == nil && len(sts) != len(qs) {
		err = fmt.Errorf("dormancy source answered %d of %d queries", len(sts), len(qs))
	}
	if err != nil {
		e.log.WarnContext(ctx, "activity unavailable; denying", "queries", len(qs), "err", err)
		for _, j := range asking {
			j.deny(ReasonFactsUnavailable, fmt.Errorf("activity unavailable: %w", err))
		}
		return
	}
	for i, j := range asking {
		j.d.Dormancy = dormancy.Evaluate(rules, qs[i].Principal.Type, j.d.Input.Action.ID.String(), qs[i].Principal, sts[i], j.start)
	}
}

// guardDormancy applies the dormancy guard after Cedar (and the other
// guards), from the decision's findings: a deny overrides a permit, a
// step-up adds its obligation to an allow.
func guardDormancy(d *Decision) {
	for _, f := range d.Dormancy {
		switch f.Effect {
		case dormancy.EffectRevalidate, dormancy.EffectDelegationDormant:
			if d.Allowed {
				d.Allowed = false
				d.Reasons = []string{f.Reason}
				d.Obligations = []string{f.Obligation}
			} else if len(d.Reasons) == 1 && (d.Reasons[0] == ReasonNotPermitted || d.Reasons[0] == ReasonNoRelationship) {
				d.Reasons = []string{f.Reason}
				d.Obligations = sortedUnique(append(d.Obligations, f.Obligation))
			} else {
				d.Reasons = sortedUnique(append(d.Reasons, f.Reason))
				d.Obligations = sortedUnique(append(d.Obligations, f.Obligation))
			}
			if d.Message == "" {
				d.Message = dormancyMessage(f)
			}
		case dormancy.EffectStepUp:
			if d.Allowed {
				d.Obligations = sortedUnique(append(d.Obligations, f.Obligation))
			}
		}
	}
}

func dormancyMessage(f dormancy.Finding) string {
	if f.Kind == dormancy.KindDelegation {
		return fmt.Sprintf("delegation %s not used for %d days (rule %s: %d): its principal must re-confirm it", f.Delegation, f.IdleDays, f.Rule, f.LimitDays)
	}
	return fmt.Sprintf("%s inactive for %d days (rule %s: %d): revalidation required", f.Subject, f.IdleDays, f.Rule, f.LimitDays)
}

// activityMark is the activity an allowed decision shows: its principal's,
// its data subject's (when known and not the principal) and the use of
// the delegations of its chain, at the decision's time. It is reserved in
// the decision's Pending and marked (markActivity) once its record is
// written.
type activityMark struct {
	principal, subject dormancy.Ref
	chain              []string
	at                 time.Time
}

// reserveActivity reserves the activity of an allowed decision in its
// Pending. A failed step-up is not the customer's activity (it may be
// someone with their password), nor is an allow that carries the
// dormancy guard's step-up: the PDP cannot know the step-up happened (the
// identity provider's signal, or a revalidation, ends that dormancy).
func (e *Engine) reserveActivity(b *policy.Bundle, j *job) {
	if !j.d.Allowed || (j.signals != nil && j.signals.stepUp != nil && j.signals.stepUp.outcome == StepUpFailed) {
		return
	}
	m := activityMark{principal: dormancy.Ref{Type: b.ObjectType(j.d.Input.Principal.Type), ID: string(j.d.Input.Principal.ID)}, at: j.start}
	if e.dormancy != nil {
		for _, f := range j.d.Dormancy {
			if f.Effect == dormancy.EffectStepUp {
				return
			}
		}
		if c := j.d.Consent; c != nil && c.Subject.ID != "" && c.Subject != (ObjectRef{Type: m.principal.Type, ID: m.principal.ID}) {
			m.subject = dormancy.Ref{Type: c.Subject.Type, ID: c.Subject.ID}
		}
		if p := j.d.Delegation; p != nil && p.Status == DelegationActive {
			m.chain = p.Chain
		}
	}
	e.pendingOf(j).reserve(pendingItem{decision: j.index, kind: pendingActivity, mark: m})
}

// markGuarded is markActivity for a decision whose record is written: a
// panic of the source is logged (the mark is lost) instead of unwinding
// through the commit of the other changes and marks.
func (e *Engine) markGuarded(ctx context.Context, m *activityMark) {
	defer func() {
		if v := recover(); v != nil {
			e.log.ErrorContext(ctx, "activity mark panicked; the decision's activity is not marked",
				"principal", m.principal.String(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	e.markActivity(m)
}

// markActivity marks a committed decision's activity: in the dormancy
// source when there is one, else the principal's in the consent ledger.
func (e *Engine) markActivity(m *activityMark) {
	if e.dormancy != nil {
		e.dormancy.TouchDecision(m.principal, m.subject, m.chain, m.at)
	} else if e.consent != nil {
		e.consent.Touch(ObjectRef{Type: m.principal.Type, ID: m.principal.ID}, m.at)
	}
}
