package policy

import (
	"iter"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
)

// The index slices a bundle's policies by their scope so that a decision
// evaluates only policies whose scope can match it. It is conservative: a
// policy is left out of a slice only when its scope cannot match, and a
// policy whose scope does not match evaluates to "not applicable" without
// touching its conditions, so a sliced evaluation gives exactly the answer,
// reasons and errors of an unsliced one (see the differential test).
//
// Level one keys on the action (expanded through the schema's action
// groups); level two on a literal principal or resource entity in the scope
// (== or in; looked up with the request entity and its ancestors), else on an
// `is` type, else the policy is in the remainder.
type index struct {
	byAction  map[types.EntityUID]*scopeIndex
	anyAction *scopeIndex
}

type scopeIndex struct {
	byPrincipal     map[types.EntityUID][]*Policy
	byResource      map[types.EntityUID][]*Policy
	byPrincipalType map[types.EntityType][]*Policy
	byResourceType  map[types.EntityType][]*Policy
	rest            []*Policy
}

func newScopeIndex() *scopeIndex {
	return &scopeIndex{
		byPrincipal:     map[types.EntityUID][]*Policy{},
		byResource:      map[types.EntityUID][]*Policy{},
		byPrincipalType: map[types.EntityType][]*Policy{},
		byResourceType:  map[types.EntityType][]*Policy{},
	}
}

func buildIndex(policies []*Policy, rs *resolved.Schema, anc map[types.EntityUID][]types.EntityUID) *index {
	ix := &index{byAction: map[types.EntityUID]*scopeIndex{}, anyAction: newScopeIndex()}
	// members[G] lists every schema action that is G or has G as an ancestor.
	members := map[types.EntityUID][]types.EntityUID{}
	for uid := range rs.Actions {
		members[uid] = append(members[uid], uid)
		for _, a := range anc[uid] {
			members[a] = append(members[a], uid)
		}
	}
	for _, p := range policies {
		a := (*ast.Policy)(p.Cedar.AST())
		var targets []types.EntityUID
		any := false
		switch s := a.Action.(type) {
		case ast.ScopeTypeEq:
			targets = []types.EntityUID{s.Entity}
		case ast.ScopeTypeIn:
			targets, any = expand(members, s.Entity)
		case ast.ScopeTypeInSet:
			for _, e := range s.Entities {
				t, unknown := expand(members, e)
				any = any || unknown
				targets = append(targets, t...)
			}
		default:
			any = true
		}
		if any {
			ix.anyAction.add(p, a)
			continue
		}
		seen := map[types.EntityUID]bool{}
		for _, t := range targets {
			if seen[t] {
				continue
			}
			seen[t] = true
			si := ix.byAction[t]
			if si == nil {
				si = newScopeIndex()
				ix.byAction[t] = si
			}
			si.add(p, a)
		}
	}
	return ix
}

// expand returns the schema actions a scope `action in g` can match; unknown
// is true when g is not a declared action (then the policy is kept for all).
func expand(members map[types.EntityUID][]types.EntityUID, g types.EntityUID) (targets []types.EntityUID, unknown bool) {
	m, ok := members[g]
	if !ok {
		return nil, true
	}
	return m, false
}

func (si *scopeIndex) add(p *Policy, a *ast.Policy) {
	if e, ok := literal(a.Principal); ok {
		si.byPrincipal[e] = append(si.byPrincipal[e], p)
		return
	}
	if e, ok := literal(a.Resource); ok {
		si.byResource[e] = append(si.byResource[e], p)
		return
	}
	if t, ok := a.Principal.(ast.ScopeTypeIs); ok {
		si.byPrincipalType[t.Type] = append(si.byPrincipalType[t.Type], p)
		return
	}
	if t, ok := a.Resource.(ast.ScopeTypeIs); ok {
		si.byResourceType[t.Type] = append(si.byResourceType[t.Type], p)
		return
	}
	si.rest = append(si.rest, p)
}

// literal returns the entity a principal or resource scope names: the
// entity of ==, in, and is-in scopes.
func literal(s any) (types.EntityUID, bool) {
	switch s := s.(type) {
	case ast.ScopeTypeEq:
		return s.Entity, true
	case ast.ScopeTypeIn:
		return s.Entity, true
	case ast.ScopeTypeIsIn:
		return s.Entity, true
	}
	return types.EntityUID{}, false
}

// Slice is the set of candidate policies for one request. It implements
// cedar.PolicyIterator.
type Slice struct {
	parts [][]*Policy
}

var _ cedar.PolicyIterator = Slice{}

// All yields every candidate policy once.
func (s Slice) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, part := range s.parts {
			for _, p := range part {
				if !yield(p.ID, p.Cedar) {
					return
				}
			}
		}
	}
}

// Len counts the candidate policies.
func (s Slice) Len() int {
	n := 0
	for _, p := range s.parts {
		n += len(p)
	}
	return n
}

// Candidates returns the policies that can apply to a request for principal,
// action and resource, given the principal's and resource's ancestors (the
// transitive parents the evaluation will see).
func (b *Bundle) Candidates(principal, action, resource types.EntityUID, principalAnc, resourceAnc []types.EntityUID) Slice {
	s := Slice{parts: make([][]*Policy, 0, 8)}
	if si := b.index.byAction[action]; si != nil {
		s = si.collect(s, principal, resource, principalAnc, resourceAnc)
	}
	return b.index.anyAction.collect(s, principal, resource, principalAnc, resourceAnc)
}

func (si *scopeIndex) collect(s Slice, p, r types.EntityUID, pAnc, rAnc []types.EntityUID) Slice {
	add := func(ps []*Policy) {
		if len(ps) > 0 {
			s.parts = append(s.parts, ps)
		}
	}
	if len(si.byPrincipal) > 0 {
		add(si.byPrincipal[p])
		for _, a := range pAnc {
			add(si.byPrincipal[a])
		}
	}
	if len(si.byResource) > 0 {
		add(si.byResource[r])
		for _, a := range rAnc {
			add(si.byResource[a])
		}
	}
	add(si.byPrincipalType[p.Type])
	add(si.byResourceType[r.Type])
	add(si.rest)
	return s
}
