package dormancy

import (
	"time"

	"github.com/ciampdp/pdp/pdp/reason"
)

// Query asks for what the guard needs about one decision: the principal's
// last activity and revalidation, and for each delegation relied on its
// basis, acceptance, last use and re-confirmation.
type Query struct {
	Principal Ref
	// Delegation is the delegation the principal acts on (the first of
	// the chain), nil when none.
	Delegation *DelegationUse
	// Horizon: activity more recent than this is not dormant under any
	// rule (Rules.Horizon), so the shared store is not asked about it.
	Horizon time.Duration
	Now     time.Time
}

// DelegationUse is the delegation a decision relies on, as the delegation
// records proved it: its id, basis and when it came into force.
type DelegationUse struct {
	ID    string
	Basis string
	Since time.Time
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

// Since is when the delegation was last in use: its acceptance, its last
// use or its last re-confirmation, the latest.
func (d DelegationState) LastInUse() time.Time {
	t := d.Since
	if d.LastUsed.After(t) {
		t = d.LastUsed
	}
	if d.Reconfirmation != nil && d.Reconfirmation.At.After(t) {
		t = d.Reconfirmation.At
	}
	return t
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
