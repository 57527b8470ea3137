// Package sources adapts the stores the engine reads facts from — the
// relationship store (SpiceDB, package relations) and the delegation
// records (package delegation) — to the engine's small interfaces
// (pdp.FactSource, pdp.FactLookup, pdp.DelegationSource).
package sources

import (
	"context"
	"fmt"
	"sync"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/relations"
)

// Facts lets the engine ask the relationship store: the engine speaks
// pdp.FactCheck, the store relations.Check.
type Facts struct{ Store *relations.Store }

var (
	_ pdp.FactSource = Facts{}
	_ pdp.FactLookup = Facts{}
)

// CheckFacts asks every check in one bulk call. When ctx carries a
// consistency token (pdp.WithConsistencyToken) the facts are at least as
// fresh as it (relations.Store.CheckBulkAtLeast: a token the store has not
// seen costs one revision barrier); a store that cannot honour it fails the
// call, so the engine denies with facts_unavailable rather than answer
// from older facts.
func (f Facts) CheckFacts(ctx context.Context, checks []pdp.FactCheck) ([]pdp.Fact, string, error) {
	rc := make([]relations.Check, len(checks))
	for i, c := range checks {
		rc[i] = relations.Check{
			Resource:   relations.Object{Type: c.ResourceType, ID: c.ResourceID},
			Permission: c.Permission,
			Subject:    relations.Object{Type: c.SubjectType, ID: c.SubjectID},
			Context:    c.Context,
		}
	}
	res, err := f.Store.CheckBulkAtLeast(ctx, rc, pdp.ConsistencyToken(ctx))
	if err != nil {
		return nil, "", err
	}
	if len(res.Items) != len(checks) {
		return nil, "", fmt.Errorf("relationship store answered %d of %d checks", len(res.Items), len(checks))
	}
	out := make([]pdp.Fact, len(checks))
	for i, r := range res.Items {
		out[i] = pdp.Fact{FactCheck: checks[i], Has: r.Has, Conditional: r.Conditional, MissingContext: r.MissingContext}
	}
	return out, res.Revision, nil
}

// LookupResources lists search candidates only SpiceDB knows, at most
// pdp.MaxLookupCandidates of them. It ignores the consistency token (the
// floor still applies): every candidate is then decided through
// CheckFacts, which honours it, so older facts can only leave a candidate
// out, never allow one.
func (f Facts) LookupResources(ctx context.Context, resourceType, permission, subjectType, subjectID string, caveat map[string]any) ([]string, error) {
	ids, _, err := f.Store.LookupResources(ctx, resourceType, permission,
		relations.Object{Type: subjectType, ID: subjectID}, caveat, pdp.MaxLookupCandidates)
	return ids, err
}

// LookupSubjects lists search candidates only SpiceDB knows, at most
// pdp.MaxLookupCandidates of them. Like LookupResources it ignores the
// consistency token.
func (f Facts) LookupSubjects(ctx context.Context, resourceType, resourceID, permission, subjectType string, caveat map[string]any) ([]string, error) {
	ids, _, err := f.Store.LookupSubjects(ctx, relations.Object{Type: resourceType, ID: resourceID},
		permission, subjectType, caveat, pdp.MaxLookupCandidates)
	return ids, err
}

// Delegations lets the engine ask the delegation records.
type Delegations struct{ Service *delegation.Service }

var _ pdp.DelegationSource = Delegations{}

// ResolveDelegations answers whether each actor may act for its
// principal, with one read of the records for all the queries
// (delegation.Service.ResolveBatch).
func (d Delegations) ResolveDelegations(ctx context.Context, qs []pdp.DelegationQuery) ([]pdp.DelegationProof, error) {
	dq := make([]delegation.Query, len(qs))
	for i, q := range qs {
		dq[i] = delegation.Query{
			Actor:     delegation.Ref{Type: q.Actor.Type, ID: q.Actor.ID},
			Principal: delegation.Ref{Type: q.Principal.Type, ID: q.Principal.ID},
			Action:    q.Action,
			Resource:  delegation.Ref{Type: q.Resource.Type, ID: q.Resource.ID},
			Amount:    q.Amount,
			Currency:  q.Currency,
			Now:       q.Now,
		}
	}
	ps, err := d.Service.ResolveBatch(ctx, dq)
	if err != nil {
		return nil, err
	}
	out := make([]pdp.DelegationProof, len(ps))
	for i, p := range ps {
		out[i] = pdp.DelegationProof{Status: p.Status, Chain: p.Chain, Considered: p.Considered, Basis: string(p.Basis), Since: p.Since}
	}
	return out, nil
}

// KnownRelations lists the relations and permissions of the active
// bundle's SpiceDB schema, by definition, for the delegation projector
// (which skips relations the schema does not declare). It parses each
// schema text once.
func KnownRelations(bundles pdp.BundleSource) func() map[string]map[string]bool {
	var (
		mu    sync.Mutex
		text  string
		known map[string]map[string]bool
	)
	return func() map[string]map[string]bool {
		b := bundles.Current()
		if b == nil {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if zed := b.SpiceDBSchema(); zed != text || known == nil {
			defs, err := relations.ParseSchemaPermissions(zed)
			if err != nil {
				return nil
			}
			known, text = delegation.KnownFromSchema(defs), zed
		}
		return known
	}
}
