package dormancy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ciampdp/pdp/pdp/reason"
)

// Query asks for what the guard needs about one decision: the principal's
// last activity and revalidation, and for each delegation relied on its
// basis, acceptance, last use and re-confirmation.
type Query struct {
	Principal   Ref
	Delegations []string
	// Horizon: activity more recent than this is not dormant under any
	// rule (Rules.Horizon), so the shared store is not asked about it.
	Horizon time.Duration
	Now     time.Time
}

// State is the answer to a Query.
type State struct {
	LastActive   time.Time
	Revalidation *Revalidation
	Delegations  []DelegationState
}

// DelegationState is what the guard knows of one delegation.
type DelegationState struct {
	ID             string
	Basis          string
	Since          time.Time // accepted (or created, for one that needs no acceptance)
	LastUsed       time.Time
	Reconfirmation *Revalidation
}

// States answers the queries of a batch: one activity read for all of
// them and, with a shared store, one catch-up of the revalidations when
// any of them looks dormant.
func (s *Service) States(ctx context.Context, qs []Query) ([]State, error) {
	var refs []Ref
	var horizon time.Duration
	now := time.Time{}
	for _, q := range qs {
		refs = append(refs, q.Principal)
		for _, id := range q.Delegations {
			refs = append(refs, AgentRef(id))
		}
		if horizon == 0 || q.Horizon < horizon {
			horizon = q.Horizon
		}
		if q.Now.After(now) {
			now = q.Now
		}
	}
	last, err := s.c.Activity.LastActive(ctx, refs, now, horizon)
	if err != nil {
		return nil, fmt.Errorf("dormancy: activity: %w", err)
	}
	out := make([]State, len(qs))
	caught := false
	for i, q := range qs {
		st := State{LastActive: last[q.Principal]}
		if s.c.Shared && !caught && !st.LastActive.IsZero() && q.Now.Sub(st.LastActive) > q.Horizon {
			if err := s.catchUp(ctx); err != nil {
				return nil, err
			}
			caught = true
		}
		if r, ok := s.Latest(q.Principal.String()); ok {
			st.Revalidation = &r
		}
		for _, id := range q.Delegations {
			ds, err := s.delegationState(ctx, id, last[AgentRef(id)])
			if err != nil {
				return nil, err
			}
			if s.c.Shared && !caught && q.Now.Sub(ds.latest()) > q.Horizon {
				if err := s.catchUp(ctx); err != nil {
					return nil, err
				}
				caught = true
				if r, ok := s.Latest(DelegationKey(id)); ok {
					ds.Reconfirmation = &r
				}
			}
			st.Delegations = append(st.Delegations, ds)
		}
		out[i] = st
	}
	return out, nil
}

func (d DelegationState) latest() time.Time {
	t := d.Since
	if d.LastUsed.After(t) {
		t = d.LastUsed
	}
	if d.Reconfirmation != nil && d.Reconfirmation.At.After(t) {
		t = d.Reconfirmation.At
	}
	return t
}

func (s *Service) delegationState(ctx context.Context, id string, used time.Time) (DelegationState, error) {
	ds := DelegationState{ID: id, LastUsed: used}
	if s.c.Delegations == nil {
		return ds, errors.New("dormancy: no delegation records to read")
	}
	d, err := s.c.Delegations.Get(ctx, id)
	if err != nil {
		return ds, fmt.Errorf("dormancy: delegation %s: %w", id, err)
	}
	ds.Basis = string(d.Basis)
	ds.Since = d.CreatedAt
	if d.AcceptedAt != nil {
		ds.Since = *d.AcceptedAt
	}
	if r, ok := s.Latest(DelegationKey(id)); ok {
		ds.Reconfirmation = &r
	}
	return ds, nil
}

// TouchDecision records an allowed decision's activity: the principal's,
// the data subject's (when known and not the principal) and the use of
// every delegation of the chain. In memory only.
func (s *Service) TouchDecision(principal, dataSubject Ref, chain []string, at time.Time) {
	s.c.Activity.Touch(principal, at)
	if dataSubject.ID != "" {
		s.c.Activity.Touch(SubjectRef(dataSubject), at)
	}
	for _, id := range chain {
		s.c.Activity.Touch(AgentRef(id), at)
	}
}

// Effects of a Finding besides EffectRevalidate and EffectStepUp.
const (
	// EffectDelegationDormant: deny delegation_dormant until the principal
	// re-confirms.
	EffectDelegationDormant = reason.DelegationDormant
	// EffectRevalidated: dormant by the rule's measure, but a
	// revalidation (or re-confirmation) since ended it: no effect, named.
	EffectRevalidated = "revalidated"
)

// RevalidationRef is how a decision names a revalidation.
type RevalidationRef struct {
	ID     string    `json:"id"`
	At     time.Time `json:"at"`
	Source string    `json:"source"`
	By     string    `json:"by"`
}

func refOf(r *Revalidation) *RevalidationRef {
	if r == nil {
		return nil
	}
	return &RevalidationRef{ID: r.ID, At: r.At, Source: r.Source, By: r.By.Subject.String()}
}

// Finding is what the guard found for one decision, as the decision
// records it: enough to apply the guard again on replay and to explain it.
type Finding struct {
	Kind       string `json:"kind"` // identity or delegation
	Rule       string `json:"rule"`
	Subject    Ref    `json:"subject,omitzero"`
	Delegation string `json:"delegation,omitempty"`
	// LastActivity is the last activity as of the decision (identity: as
	// principal; delegation: its last use, or its acceptance when never
	// used); zero when none is known.
	LastActivity time.Time `json:"last_activity,omitzero"`
	IdleDays     int       `json:"idle_days"`
	LimitDays    int       `json:"limit_days"`
	// Revalidation is the one that ended the dormancy (Effect revalidated).
	Revalidation *RevalidationRef `json:"revalidation,omitempty"`
	Effect       string           `json:"effect"`
	Reason       string           `json:"reason,omitempty"`
	Obligation   string           `json:"obligation,omitempty"`
}

func days(d time.Duration) int { return int(d / (24 * time.Hour)) }

// Evaluate applies the rules to one decision's state: nothing when no
// rule applies. action is the request's action name, principalType the
// principal's type as the request names it.
func Evaluate(r *Rules, principalType, action string, principal Ref, st State, now time.Time) []Finding {
	if r == nil {
		return nil
	}
	var out []Finding
	if r.AppliesTo(principalType) && !st.LastActive.IsZero() {
		idle := now.Sub(st.LastActive)
		if ir, eff, ok := r.Identity(action, idle); ok {
			f := Finding{Kind: KindIdentity, Rule: ir.ID, Subject: principal, LastActivity: st.LastActive,
				IdleDays: days(idle), LimitDays: days(ir.After), Effect: eff}
			switch {
			case st.Revalidation != nil && st.Revalidation.At.After(st.LastActive) && !st.Revalidation.At.After(now):
				f.Effect, f.Revalidation = EffectRevalidated, refOf(st.Revalidation)
			case eff == EffectRevalidate:
				f.Reason, f.Obligation = reason.RevalidationRequired, ObligationRevalidation
			default:
				f.Obligation = ObligationStepUp
			}
			out = append(out, f)
		}
	}
	for _, ds := range st.Delegations {
		dr, ok := r.Delegation(ds.Basis)
		if !ok {
			continue
		}
		base := ds.Since
		if ds.LastUsed.After(base) {
			base = ds.LastUsed
		}
		if base.IsZero() {
			continue
		}
		idle := now.Sub(base)
		if idle <= dr.UnusedAfter {
			continue
		}
		f := Finding{Kind: KindDelegation, Rule: dr.ID, Subject: principal, Delegation: ds.ID, LastActivity: base,
			IdleDays: days(idle), LimitDays: days(dr.UnusedAfter), Effect: EffectDelegationDormant,
			Reason: reason.DelegationDormant, Obligation: ObligationReconfirm}
		if rc := ds.Reconfirmation; rc != nil && rc.At.After(base) && !rc.At.After(now) {
			f.Effect, f.Reason, f.Obligation, f.Revalidation = EffectRevalidated, "", "", refOf(rc)
		}
		out = append(out, f)
	}
	return out
}
