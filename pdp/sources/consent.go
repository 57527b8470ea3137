package sources

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
)

// Consent lets the engine ask the consent ledger.
type Consent struct{ Ledger *consent.Ledger }

var _ pdp.ConsentSource = Consent{}

// CheckConsents applies the registry's rules to the data subjects'
// consent state, for every query against one state of the ledger
// (consent.Ledger.CheckBatch: one freshness check for all of them).
func (c Consent) CheckConsents(ctx context.Context, qs []pdp.ConsentQuery) ([]pdp.ConsentFact, error) {
	cq := make([]consent.CheckQuery, len(qs))
	for i, q := range qs {
		cq[i] = consent.CheckQuery{
			Subject:      consent.Ref{Type: q.Subject.Type, ID: q.Subject.ID},
			Purpose:      q.Purpose,
			Application:  q.Application,
			Jurisdiction: q.Jurisdiction,
			BirthDate:    q.BirthDate,
			Now:          q.Now,
		}
	}
	rs, err := c.Ledger.CheckBatch(ctx, cq)
	if err != nil {
		return nil, err
	}
	out := make([]pdp.ConsentFact, len(rs))
	for i, r := range rs {
		out[i] = pdp.ConsentFact{Allowed: r.Allowed, Status: r.Status, Reason: r.Reason, Basis: string(r.Basis),
			GrantID: r.GrantID, Position: r.Position, Detail: r.Detail}
	}
	return out, nil
}

// Touch records that the subject was active.
func (c Consent) Touch(subject pdp.ObjectRef, at time.Time) {
	c.Ledger.Touch(consent.Ref{Type: subject.Type, ID: subject.ID}, at)
}

// Representatives answers the consent ledger's question "did this agent
// act for that principal under this delegation?" from the delegation
// records.
type Representatives struct{ Service *delegation.Service }

var _ consent.DelegationChecker = Representatives{}

// ErrNotRepresentative: the delegation named is not one in force from the
// principal to the agent at that time.
var ErrNotRepresentative = errors.New("no delegation in force from the data subject to the representative")

// Representative reports whether the delegation with id was in force from
// principal to agent at at, and what it allows: whether it is statutory (a
// guardian, a legal representative) and its scope.
func (r Representatives) Representative(ctx context.Context, agent, principal consent.Ref, id string, at time.Time) (consent.Mandate, error) {
	if r.Service == nil {
		return consent.Mandate{}, ErrNotRepresentative
	}
	d, err := r.Service.Get(ctx, id)
	if errors.Is(err, delegation.ErrNotFound) {
		// An id that does not exist answers as one that is not the
		// representative's: a consent change cannot probe ids.
		return consent.Mandate{}, ErrNotRepresentative
	}
	if err != nil {
		return consent.Mandate{}, err
	}
	if d.Agent.Type != agent.Type || d.Agent.ID != agent.ID || d.Principal.Type != principal.Type || d.Principal.ID != principal.ID {
		return consent.Mandate{}, ErrNotRepresentative
	}
	if d.Effective(at) != delegation.StatusActive {
		return consent.Mandate{}, ErrNotRepresentative
	}
	return consent.Mandate{
		Statutory: d.Basis == delegation.BasisStatutoryGuardian || d.Basis == delegation.BasisLegalRepresentative,
		Scope:     slices.Clone(d.Scope),
	}, nil
}
