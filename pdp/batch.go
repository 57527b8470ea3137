package pdp

import (
	"context"
	"errors"
	"fmt"

	"github.com/ciampdp/pdp/pdp/policy"
)

// decideBatch decides prepared requests with one read of each store for
// the whole batch: the delegation records (resolveDelegations), the
// consent ledger (resolveConsents) and the relationship store
// (fetchFacts). A store that cannot be read denies the items that needed
// it (facts_unavailable), not the others. The jobs reserve their
// changes to the velocity and failed step-up counters in *pending;
// searches pass nil: the candidates they deny are no one's attempt, so
// velocity rules do not count them.
func (e *Engine) decideBatch(ctx context.Context, b *policy.Bundle, reqs []Request, pending **Pending) []Decision {
	jobs := make([]job, len(reqs))
	ptrs := make([]*job, len(reqs))
	for i, r := range reqs {
		jobs[i] = e.prepare(b, r)
		jobs[i].pending, jobs[i].index = pending, i
		ptrs[i] = &jobs[i]
	}
	e.resolveDelegations(ctx, ptrs)
	e.resolveConsents(ctx, b, ptrs)
	e.resolveDormancy(ctx, b, ptrs)
	var checks []FactCheck
	for i := range jobs {
		if jobs[i].done {
			continue
		}
		jobs[i].factsAt = len(checks)
		checks = append(checks, jobs[i].checks...)
	}
	facts, revision, factErr := e.fetchFacts(ctx, checks)
	out := make([]Decision, len(reqs))
	for i := range jobs {
		j := &jobs[i]
		var mine []Fact
		if !j.done && factErr == nil && len(j.checks) > 0 {
			mine = facts[j.factsAt : j.factsAt+len(j.checks)]
		}
		e.finish(b, j, mine, revision, factErr)
		out[i] = j.d
	}
	return out
}

// resolveDelegations asks the delegation records, in one call, about every
// job acting for someone; when the records cannot be read those jobs are
// denied (fail closed).
func (e *Engine) resolveDelegations(ctx context.Context, jobs []*job) {
	var (
		asking []*job
		qs     []DelegationQuery
	)
	for _, j := range jobs {
		if !j.done && j.dq != nil {
			asking = append(asking, j)
			qs = append(qs, *j.dq)
		}
	}
	if len(asking) == 0 {
		return
	}
	deny := func(err error) {
		for _, j := range asking {
			j.deny(ReasonFactsUnavailable, err)
		}
	}
	if e.delegations == nil {
		deny(errors.New("delegation records unavailable: no delegation store is configured"))
		return
	}
	ps, err := e.delegations.ResolveDelegations(ctx, qs)
	if err == nil && len(ps) != len(qs) {
		err = fmt.Errorf("delegation records answered %d of %d queries", len(ps), len(qs))
	}
	if err != nil {
		e.log.WarnContext(ctx, "delegation records unavailable; denying", "queries", len(qs), "err", err)
		deny(fmt.Errorf("delegation records unavailable: %w", err))
		return
	}
	for i, j := range asking {
		p := ps[i]
		p.OnBehalfOf = j.dq.Principal
		j.d.Delegation = &p
	}
}

// resolveConsents finds the data subject of every job with a consent
// check and asks the ledger about all of them in one call; when the ledger
// cannot answer those jobs are denied (fail closed).
func (e *Engine) resolveConsents(ctx context.Context, b *policy.Bundle, jobs []*job) {
	var (
		asking []*job
		qs     []ConsentQuery
	)
	for _, j := range jobs {
		if e.subjectConsent(ctx, b, j) {
			asking = append(asking, j)
			qs = append(qs, j.consent.query)
		}
	}
	if len(asking) == 0 {
		return
	}
	fs, err := e.consent.CheckConsents(ctx, qs)
	if err == nil && len(fs) != len(qs) {
		err = fmt.Errorf("consent ledger answered %d of %d checks", len(fs), len(qs))
	}
	if err != nil {
		e.log.WarnContext(ctx, "consent ledger unavailable; denying", "checks", len(qs), "err", err)
		for _, j := range asking {
			j.deny(ReasonFactsUnavailable, fmt.Errorf("consent ledger unavailable: %w", err))
		}
		return
	}
	for i, j := range asking {
		f := fs[i]
		f.Subject, f.Purpose = j.consent.query.Subject, j.consent.purpose
		j.d.Consent = &f
	}
}
