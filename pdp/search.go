package pdp

import (
	"context"
	"sort"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/ciampdp/pdp/pdp/policy"
)

// Search answers the AuthZEN search APIs by deciding every candidate as a
// batch (one policy snapshot, one round trip for relationship facts) and
// keeping the allowed ones. Candidates are the entities the PDP knows: the
// bundle's trusted entities of the searched type, and for action search the
// schema's actions that apply to the subject and resource types. Subjects or
// resources known only to the relationship store are not enumerated yet
// (that needs SpiceDB's LookupSubjects / LookupResources).

// SearchSubjects returns the subjects of req.Subject.Type that may perform
// req.Action on req.Resource, sorted by id. req.Subject.ID and its
// properties are ignored. An unknown type gives no results.
func (e *Engine) SearchSubjects(ctx context.Context, req Request) ([]Entity, error) {
	b := e.bundles.Current()
	if b == nil {
		return nil, ErrNotReady
	}
	if !describes(b, req.Resource) {
		return []Entity{}, nil
	}
	ids := knownIDs(b, req.Subject.Type)
	reqs := make([]Request, len(ids))
	for i, id := range ids {
		reqs[i] = req
		reqs[i].Subject = Entity{Type: req.Subject.Type, ID: id}
	}
	return e.allowedEntities(ctx, b, reqs, func(r Request) Entity { return r.Subject })
}

// SearchResources returns the resources of req.Resource.Type on which
// req.Subject may perform req.Action, sorted by id. req.Resource.ID and its
// properties are ignored.
func (e *Engine) SearchResources(ctx context.Context, req Request) ([]Entity, error) {
	b := e.bundles.Current()
	if b == nil {
		return nil, ErrNotReady
	}
	if !describes(b, req.Subject) {
		return []Entity{}, nil
	}
	ids := knownIDs(b, req.Resource.Type)
	reqs := make([]Request, len(ids))
	for i, id := range ids {
		reqs[i] = req
		reqs[i].Resource = Entity{Type: req.Resource.Type, ID: id}
	}
	return e.allowedEntities(ctx, b, reqs, func(r Request) Entity { return r.Resource })
}

// SearchActions returns the names of the actions, among those the schema
// declares for the subject's and resource's types, that req.Subject may
// perform on req.Resource, sorted.
func (e *Engine) SearchActions(ctx context.Context, req Request) ([]string, error) {
	b := e.bundles.Current()
	if b == nil {
		return nil, ErrNotReady
	}
	pt, okP := b.EntityType(req.Subject.Type)
	rt, okR := b.EntityType(req.Resource.Type)
	if !okP || !okR || !describes(b, req.Subject) || !describes(b, req.Resource) {
		return []string{}, nil
	}
	var names []string
	for uid, a := range b.Schema().Actions {
		if a.AppliesTo != nil && containsType(a.AppliesTo.Principals, pt) && containsType(a.AppliesTo.Resources, rt) {
			names = append(names, string(uid.ID))
		}
	}
	sort.Strings(names)
	reqs := make([]Request, len(names))
	for i, n := range names {
		reqs[i] = req
		reqs[i].Action = Action{Name: n}
	}
	ds, err := e.decideBatch(ctx, b, reqs)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for i, d := range ds {
		if d.Allowed {
			out = append(out, names[i])
		}
	}
	return out, nil
}

func (e *Engine) allowedEntities(ctx context.Context, b *policy.Bundle, reqs []Request, pick func(Request) Entity) ([]Entity, error) {
	ds, err := e.decideBatch(ctx, b, reqs)
	if err != nil {
		return nil, err
	}
	out := []Entity{}
	for i, d := range ds {
		if d.Allowed {
			ent := pick(reqs[i])
			out = append(out, Entity{Type: ent.Type, ID: ent.ID})
		}
	}
	return out, nil
}

// describes reports whether the PDP knows an input entity of a search:
// from its trusted entities, or described by the request's properties. A
// search about an entity it does not know has no results (AuthZEN
// certification: unknown ids give an empty result, not an error).
func describes(b *policy.Bundle, e Entity) bool {
	et, ok := b.EntityType(e.Type)
	if !ok {
		return false
	}
	if len(e.Properties) > 0 {
		return true
	}
	_, known := b.Entities()[types.NewEntityUID(et, types.String(e.ID))]
	return known
}

// knownIDs lists the ids of the bundle's entities of an AuthZEN type, sorted.
func knownIDs(b *policy.Bundle, typ string) []string {
	et, ok := b.EntityType(typ)
	if !ok {
		return nil
	}
	var ids []string
	for uid := range b.Entities() {
		if uid.Type == et {
			ids = append(ids, string(uid.ID))
		}
	}
	sort.Strings(ids)
	return ids
}

func containsType(ts []types.EntityType, t types.EntityType) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}
