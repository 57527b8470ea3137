// Package bundlecheck holds the checks a policy bundle must pass beyond
// loading (Cedar and schema validation): that its Cedar schema and its
// SpiceDB schema agree. `pdp validate` runs them, and so does the
// reloader before a version may serve.
package bundlecheck

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/zedschema"
)

// Check returns every problem of b, one per line as `pdp validate` prints
// them, sorted within each kind. The error is for a SpiceDB schema that
// does not compile when actions need its facts.
func Check(b *policy.Bundle) ([]string, error) {
	problems, err := FactsModel(b)
	if err != nil {
		return nil, err
	}
	problems = append(problems, pdp.DelegationProblems(b)...)
	problems = append(problems, DataSubjects(b)...)
	return problems, nil
}

// Err is Check as one error (nil when the bundle has no problem), for the
// reloader's Prepare step.
func Err(b *policy.Bundle) error {
	problems, err := Check(b)
	if err != nil {
		return err
	}
	switch len(problems) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("the bundle has 1 problem: %s", problems[0])
	default:
		return fmt.Errorf("the bundle has %d problems: %s", len(problems), strings.Join(problems, "; "))
	}
}

// FactsModel reports every relationship fact the Cedar schema declares
// that the bundle's SpiceDB schema cannot answer: a missing schema/*.zed,
// a resource or principal type with no SpiceDB definition, or a fact that is
// neither a relation nor a permission of the resource's definition.
func FactsModel(b *policy.Bundle) ([]string, error) {
	plans := pdp.FactPlans(b)
	if len(plans) == 0 {
		return nil, nil
	}
	if strings.TrimSpace(b.SpiceDBSchema()) == "" {
		return []string{"schema: actions declare relationship facts (context.rel) but the bundle has no SpiceDB schema (schema/*.zed)"}, nil
	}
	defs, err := zedschema.ParseSchemaPermissions(b.SpiceDBSchema())
	if err != nil {
		return nil, fmt.Errorf("SpiceDB schema: %w", err)
	}
	var problems []string
	for action, facts := range plans {
		a := b.Schema().Actions[action].AppliesTo
		for _, pt := range a.Principals {
			if _, ok := defs[b.ObjectType(pt)]; !ok {
				problems = append(problems, fmt.Sprintf("schema: action %s: principal type %s has no SpiceDB definition %q", action, pt, b.ObjectType(pt)))
			}
		}
		for _, rt := range a.Resources {
			def, ok := defs[b.ObjectType(rt)]
			if !ok {
				problems = append(problems, fmt.Sprintf("schema: action %s: resource type %s has no SpiceDB definition %q", action, rt, b.ObjectType(rt)))
				continue
			}
			for _, f := range facts {
				if _, ok := def[f]; !ok {
					problems = append(problems, fmt.Sprintf("schema: action %s: fact context.rel.%s is neither a relation nor a permission of SpiceDB definition %q", action, f, b.ObjectType(rt)))
				}
			}
		}
	}
	sort.Strings(problems)
	return problems, nil
}

// DataSubjects reports @data_subject annotations the bundle cannot
// honour: a relation the SpiceDB schema does not define on the entity's
// SpiceDB definition.
func DataSubjects(b *policy.Bundle) []string {
	var out []string
	var defs map[string]map[string]zedschema.NameKind
	for et := range b.Schema().Entities {
		rule, ok := b.DataSubject(et)
		if !ok || rule == policy.DataSubjectSelf {
			continue
		}
		if defs == nil {
			var err error
			if defs, err = zedschema.ParseSchemaPermissions(b.SpiceDBSchema()); err != nil || strings.TrimSpace(b.SpiceDBSchema()) == "" {
				out = append(out, fmt.Sprintf("schema: entity %s: @data_subject(%q) needs the relation in the SpiceDB schema (schema/*.zed), which is missing or does not compile", et, rule))
				defs = map[string]map[string]zedschema.NameKind{}
				continue
			}
		}
		obj := b.ObjectType(et)
		if _, ok := defs[obj][rule]; !ok {
			out = append(out, fmt.Sprintf("schema: entity %s: @data_subject(%q): SpiceDB definition %q has no relation or permission %q", et, rule, obj, rule))
		}
	}
	sort.Strings(out)
	return out
}
