package pdp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/ciampdp/pdp/pdp/policy"
)

// Search answers the AuthZEN search APIs by deciding every candidate as a
// batch (one policy snapshot, one round trip for relationship facts) and
// keeping the allowed ones. Candidates are the entities the PDP knows: the
// bundle's trusted entities of the searched type, and for action search the
// schema's actions that apply to the subject and resource types. When the
// fact source can also enumerate the relationship graph (FactLookup), the
// subjects or resources the relationship store returns for the action's
// facts are candidates too: those that exist only in SpiceDB. Cedar decides
// every candidate, so a policy can still deny one the store returns.

// ErrFactsUnavailable is returned by a search whose answer needs the
// relationship store (to list candidates, or for the facts its decisions
// read) when the store cannot answer. A search does not answer "nobody"
// when it does not know.
var ErrFactsUnavailable = errors.New("pdp: relationship facts unavailable")

// MaxLookupCandidates bounds how many candidates a subject or resource
// search takes from the relationship store for each fact (permission) of
// the action, so that one search cannot hold an unbounded list: a FactLookup
// should read no more than this many ids, and the engine keeps no more.
// When the bound is reached the search answers from the first ids (in the
// order the store returned them) and logs a warning.
const MaxLookupCandidates = 10_000

// FactLookup lists candidates from the relationship store for search, in
// the store's terms (SpiceDB object types and ids): the ids of the
// resources of resourceType on which the subject holds permission, or of
// the subjects of subjectType that hold permission on the resource. Only
// definite holders count: one that holds the permission only under a
// caveat whose context is missing, or only through a wildcard, is left
// out. caveat feeds caveats, as FactCheck.Context does. A FactSource that
// also implements it lets search find entities that only the store knows.
type FactLookup interface {
	LookupResources(ctx context.Context, resourceType, permission, subjectType, subjectID string, caveat map[string]any) ([]string, error)
	LookupSubjects(ctx context.Context, resourceType, resourceID, permission, subjectType string, caveat map[string]any) ([]string, error)
}

// SearchSubjects returns the subjects of req.Subject.Type that may perform
// req.Action on req.Resource, sorted by id. req.Subject.ID and its
// properties are ignored. An unknown type gives no results, and so does a
// resource that neither the bundle, nor the request's properties, nor the
// relationship store (by holders it returns) describes.
func (e *Engine) SearchSubjects(ctx context.Context, req Request) ([]Entity, error) {
	b := e.bundles.Current()
	if b == nil {
		return nil, ErrNotReady
	}
	found, err := e.lookUp(ctx, b, req, true)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 && !describes(b, req.Resource) {
		return []Entity{}, nil
	}
	ids := union(knownIDs(b, req.Subject.Type), found)
	reqs := make([]Request, len(ids))
	for i, id := range ids {
		reqs[i] = req
		reqs[i].Subject = Entity{Type: req.Subject.Type, ID: id}
	}
	return e.allowedEntities(ctx, b, reqs, func(r Request) Entity { return r.Subject })
}

// SearchResources returns the resources of req.Resource.Type on which
// req.Subject may perform req.Action, sorted by id. req.Resource.ID and its
// properties are ignored. A subject unknown as in SearchSubjects gives no
// results.
func (e *Engine) SearchResources(ctx context.Context, req Request) ([]Entity, error) {
	b := e.bundles.Current()
	if b == nil {
		return nil, ErrNotReady
	}
	found, err := e.lookUp(ctx, b, req, false)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 && !describes(b, req.Subject) {
		return []Entity{}, nil
	}
	ids := union(knownIDs(b, req.Resource.Type), found)
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
	for uid := range b.Schema().Actions {
		if appliesTo(b, uid, pt, rt) {
			names = append(names, string(uid.ID))
		}
	}
	sort.Strings(names)
	reqs := make([]Request, len(names))
	for i, n := range names {
		reqs[i] = req
		reqs[i].Action = Action{Name: n}
	}
	ds := e.decideBatch(ctx, b, reqs, nil)
	if err := e.factsFailed(ds); err != nil {
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
	ds := e.decideBatch(ctx, b, reqs, nil)
	if err := e.factsFailed(ds); err != nil {
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

// lookUp lists the candidates of a subject search (subjects true) or a
// resource search that the relationship store knows: for each fact the
// action's context declares, the subjects holding that permission on the
// resource, or the resources the subject holds it on. Without a FactLookup,
// facts, or an action that applies to the two types, there are none.
func (e *Engine) lookUp(ctx context.Context, b *policy.Bundle, req Request, subjects bool) ([]string, error) {
	fl, ok := e.facts.(FactLookup)
	if !ok {
		return nil, nil
	}
	pt, okP := b.EntityType(req.Subject.Type)
	rt, okR := b.EntityType(req.Resource.Type)
	aUID, _, okA := b.Action(req.Action.Name)
	if !okP || !okR || !okA || (subjects && req.Resource.ID == "") || (!subjects && req.Subject.ID == "") {
		return nil, nil
	}
	plan := e.plansFor(b)[aUID]
	if len(plan) == 0 {
		return nil, nil
	}
	if !appliesTo(b, aUID, pt, rt) {
		return nil, nil
	}
	caveats := caveatContext(req.Context, e.now())
	objRes, objSub := b.ObjectType(rt), b.ObjectType(pt)
	if subjects {
		if err := checkObjectID(objRes, req.Resource.ID); err != nil {
			return nil, err
		}
	} else if err := checkObjectID(objSub, req.Subject.ID); err != nil {
		return nil, err
	}
	if err := checkCaveatContext(caveats); err != nil {
		return nil, err
	}
	var out []string
	for _, perm := range plan {
		var (
			ids []string
			err error
		)
		if subjects {
			ids, err = fl.LookupSubjects(ctx, objRes, req.Resource.ID, perm, objSub, caveats)
		} else {
			ids, err = fl.LookupResources(ctx, objRes, perm, objSub, req.Subject.ID, caveats)
		}
		if err != nil {
			e.log.WarnContext(ctx, "relationship store lookup failed; search unavailable", "permission", perm, "err", err)
			return nil, fmt.Errorf("%w: list candidates (%s): %w", ErrFactsUnavailable, perm, err)
		}
		if len(ids) >= MaxLookupCandidates {
			ids = ids[:MaxLookupCandidates]
			e.log.WarnContext(ctx, "search candidates from the relationship store capped; the answer may be incomplete",
				"permission", perm, "cap", MaxLookupCandidates)
		}
		out = append(out, ids...)
	}
	return out, nil
}

// factsFailed returns ErrFactsUnavailable when the relationship store
// could not give the facts a search's decisions read: each such candidate
// was denied (failing closed), which a search must not report as an answer.
// Without a configured store those actions always deny, and the search
// answers so.
func (e *Engine) factsFailed(ds []Decision) error {
	for _, d := range ds {
		// A search about an id or a context the relationship store
		// refuses is a bad request, whichever candidate showed it.
		for code, sentinel := range map[string]error{ReasonInvalidID: ErrInvalidID, ReasonContextTooLarge: ErrContextTooLarge} {
			if slices.Contains(d.Reasons, code) {
				return fmt.Errorf("%w%s", sentinel, strings.TrimPrefix(d.Message, sentinel.Error()))
			}
		}
	}
	if e.facts == nil {
		return nil
	}
	for _, d := range ds {
		if slices.Contains(d.Reasons, ReasonFactsUnavailable) {
			return fmt.Errorf("%w: %s", ErrFactsUnavailable, d.Message)
		}
	}
	return nil
}

// union merges two id lists into one, sorted, without duplicates.
func union(a, b []string) []string {
	out := append(slices.Clip(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
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
