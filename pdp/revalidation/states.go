package revalidation

import (
	"context"
	"fmt"
	"time"

	"github.com/ciampdp/pdp/pdp/dormancy"
)

var _ interface {
	States(context.Context, []dormancy.Query) ([]dormancy.State, error)
	TouchDecision(principal, dataSubject dormancy.Ref, chain []string, at time.Time)
} = (*Service)(nil)

// States answers the queries of a batch: one activity read for all of
// them (in memory; with a shared store, one read of those that look
// dormant) and, with a shared store, at most one catch-up of the
// revalidations when any of them looks dormant. The delegations' basis
// and start come with the query (the delegation records' proof): no read
// of the records.
func (s *Service) States(ctx context.Context, qs []dormancy.Query) ([]dormancy.State, error) {
	refs := make([]Ref, 0, len(qs))
	var (
		horizon time.Duration
		now     time.Time
	)
	for _, q := range qs {
		refs = append(refs, q.Principal)
		if q.Delegation != nil {
			refs = append(refs, dormancy.AgentRef(q.Delegation.ID))
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
	out := make([]dormancy.State, len(qs))
	if s.c.Shared {
		for _, q := range qs {
			if looksDormant(q, last) {
				if err := s.catchUp(ctx); err != nil {
					return nil, err
				}
				break
			}
		}
	}
	for i, q := range qs {
		st := dormancy.State{LastActive: last[q.Principal]}
		if r, ok := s.Latest(q.Principal.String()); ok {
			st.Revalidation = &r
		}
		if d := q.Delegation; d != nil {
			ds := dormancy.DelegationState{ID: d.ID, Basis: d.Basis, Since: d.Since, LastUsed: last[dormancy.AgentRef(d.ID)]}
			if r, ok := s.Latest(dormancy.DelegationKey(d.ID)); ok {
				ds.Reconfirmation = &r
			}
			st.Delegations = []dormancy.DelegationState{ds}
		}
		out[i] = st
	}
	return out, nil
}

// looksDormant: the principal's activity, or the delegation's use, is
// older than the query's horizon (another replica may have revalidated).
func looksDormant(q dormancy.Query, last map[Ref]time.Time) bool {
	if at := last[q.Principal]; !at.IsZero() && q.Now.Sub(at) > q.Horizon {
		return true
	}
	if d := q.Delegation; d != nil {
		t := d.Since
		if u := last[dormancy.AgentRef(d.ID)]; u.After(t) {
			t = u
		}
		return !t.IsZero() && q.Now.Sub(t) > q.Horizon
	}
	return false
}

// TouchDecision records an allowed decision's activity: the principal's,
// the data subject's (when known and not the principal) and the use of
// every delegation of the chain. In memory only.
func (s *Service) TouchDecision(principal, dataSubject Ref, chain []string, at time.Time) {
	s.c.Activity.Touch(principal, at)
	if dataSubject.ID != "" {
		s.c.Activity.Touch(dormancy.SubjectRef(dataSubject), at)
	}
	for _, id := range chain {
		s.c.Activity.Touch(dormancy.AgentRef(id), at)
	}
}
