// Package zedschema owns reading SpiceDB schemas (the zed language) with
// SpiceDB's own compiler, without linking the SpiceDB server: which names a
// definition has, which caveats its relations take, which names may reach a
// caveat.
package zedschema

import (
	"fmt"

	core "github.com/authzed/spicedb/pkg/proto/core/v1"
	"github.com/authzed/spicedb/pkg/schemadsl/compiler"
	"github.com/authzed/spicedb/pkg/schemadsl/input"
)

// NameKind tells a relation (stored facts) from a permission (computed).
type NameKind int

const (
	KindRelation NameKind = iota + 1
	KindPermission
)

func (k NameKind) String() string {
	switch k {
	case KindRelation:
		return "relation"
	case KindPermission:
		return "permission"
	}
	return "unknown"
}

// ParseSchemaPermissions compiles a zed schema (with SpiceDB's own compiler)
// and lists, per object definition, the names a Check may ask for: its
// relations and permissions. `pdp validate` uses it to check that every fact
// the Cedar schema declares exists in the SpiceDB schema.
func ParseSchemaPermissions(zed string) (map[string]map[string]NameKind, error) {
	compiled, err := compiler.Compile(compiler.InputSchema{
		Source:       input.Source("schema"),
		SchemaString: zed,
	}, compiler.AllowUnprefixedObjectType())
	if err != nil {
		return nil, fmt.Errorf("zedschema: compile schema: %w", err)
	}
	out := make(map[string]map[string]NameKind, len(compiled.ObjectDefinitions))
	for _, def := range compiled.ObjectDefinitions {
		names := make(map[string]NameKind, len(def.GetRelation()))
		for _, rel := range def.GetRelation() {
			kind := KindRelation
			if rel.GetUsersetRewrite() != nil {
				kind = KindPermission
			}
			names[rel.GetName()] = kind
		}
		out[def.GetName()] = names
	}
	return out, nil
}

// RelationCaveats compiles a zed schema and lists, per object definition
// and relation, the caveats its allowed subject types may carry ("" for a
// subject type without a caveat). Permissions are left out. Writers that
// must decide whether to attach a caveat (the delegation projection: an
// amount limit only where the schema takes one) read it.
func RelationCaveats(zed string) (map[string]map[string]map[string]bool, error) {
	compiled, err := compiler.Compile(compiler.InputSchema{
		Source:       input.Source("schema"),
		SchemaString: zed,
	}, compiler.AllowUnprefixedObjectType())
	if err != nil {
		return nil, fmt.Errorf("zedschema: compile schema: %w", err)
	}
	out := make(map[string]map[string]map[string]bool, len(compiled.ObjectDefinitions))
	for _, def := range compiled.ObjectDefinitions {
		rels := map[string]map[string]bool{}
		for _, rel := range def.GetRelation() {
			if rel.GetUsersetRewrite() != nil {
				continue
			}
			caveats := map[string]bool{}
			for _, ar := range rel.GetTypeInformation().GetAllowedDirectRelations() {
				caveats[ar.GetRequiredCaveat().GetCaveatName()] = true
			}
			rels[rel.GetName()] = caveats
		}
		out[def.GetName()] = rels
	}
	return out, nil
}

// CaveatedNames compiles a zed schema and reports, per definition, the
// relations and permissions whose evaluation may reach a caveat — through
// a caveated subject type, a subject relation, an arrow or a nested
// rewrite. A check of any other name needs no caveat context: the PDP
// leaves it out, so that the fact cache keys such checks without the
// request's context and the decision time. Names absent from the result
// (unknown definitions) should be treated as caveated.
func CaveatedNames(zed string) (map[string]map[string]bool, error) {
	compiled, err := compiler.Compile(compiler.InputSchema{
		Source:       input.Source("schema"),
		SchemaString: zed,
	}, compiler.AllowUnprefixedObjectType())
	if err != nil {
		return nil, fmt.Errorf("zedschema: compile schema: %w", err)
	}
	rels := map[string]map[string]*core.Relation{}
	out := map[string]map[string]bool{}
	for _, def := range compiled.ObjectDefinitions {
		rels[def.GetName()] = map[string]*core.Relation{}
		out[def.GetName()] = map[string]bool{}
		for _, r := range def.GetRelation() {
			rels[def.GetName()][r.GetName()] = r
			out[def.GetName()][r.GetName()] = false
		}
	}
	is := func(def, name string) bool { return out[def][name] }
	// arrow: the tupleset relation's subjects' computed name.
	arrow := func(def, tupleset, computed string) bool {
		if is(def, tupleset) {
			return true
		}
		ts := rels[def][tupleset]
		for _, ar := range ts.GetTypeInformation().GetAllowedDirectRelations() {
			if _, ok := rels[ar.GetNamespace()][computed]; ok && is(ar.GetNamespace(), computed) {
				return true
			}
		}
		return false
	}
	var rewrite func(def string, rw *core.UsersetRewrite) bool
	rewrite = func(def string, rw *core.UsersetRewrite) bool {
		op := rw.GetUnion()
		if op == nil {
			op = rw.GetIntersection()
		}
		if op == nil {
			op = rw.GetExclusion()
		}
		for _, c := range op.GetChild() {
			switch {
			case c.GetComputedUserset() != nil:
				if is(def, c.GetComputedUserset().GetRelation()) {
					return true
				}
			case c.GetTupleToUserset() != nil:
				t := c.GetTupleToUserset()
				if arrow(def, t.GetTupleset().GetRelation(), t.GetComputedUserset().GetRelation()) {
					return true
				}
			case c.GetFunctionedTupleToUserset() != nil:
				t := c.GetFunctionedTupleToUserset()
				if arrow(def, t.GetTupleset().GetRelation(), t.GetComputedUserset().GetRelation()) {
					return true
				}
			case c.GetUsersetRewrite() != nil:
				if rewrite(def, c.GetUsersetRewrite()) {
					return true
				}
			}
		}
		return false
	}
	for changed := true; changed; {
		changed = false
		for def, names := range rels {
			for name, r := range names {
				if out[def][name] {
					continue
				}
				v := false
				if rw := r.GetUsersetRewrite(); rw != nil {
					v = rewrite(def, rw)
				} else {
					for _, ar := range r.GetTypeInformation().GetAllowedDirectRelations() {
						if ar.GetRequiredCaveat().GetCaveatName() != "" {
							v = true
							break
						}
						if sub := ar.GetRelation(); sub != "" && sub != "..." && is(ar.GetNamespace(), sub) {
							v = true
							break
						}
					}
				}
				if v {
					out[def][name], changed = true, true
				}
			}
		}
	}
	return out, nil
}
