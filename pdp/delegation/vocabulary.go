package delegation

import (
	"slices"
	"strings"
	"time"
)

// Vocabulary is what the active policy bundle's schema declares, in the
// relationship store's terms (object types such as "user" and
// "account"): an offer may only name those. *sources.Vocabulary reads it
// from the bundle in force at the time of the call.
type Vocabulary interface {
	// DeclaresType reports whether typ is the object type of an entity
	// type the schema declares.
	DeclaresType(typ string) bool
	// ActionResources reports whether action is declared and, if so, the
	// object types of the resources it applies to.
	ActionResources(action string) (resources []string, ok bool)
	// Actions lists the declared actions, sorted.
	Actions() []string
}

// checkVocabulary refuses an offer that names what the schema does not
// declare: a party or resource of an undeclared type, an action in the
// scope that no policy can ask about (view_statment for view_statements),
// or a resource no action of the scope applies to (a user as the account
// of a payment). Such a delegation would be stored, projected and never
// match a decision. A nil Vocabulary checks nothing.
func checkVocabulary(v Vocabulary, d *Delegation) error {
	if v == nil {
		return nil
	}
	for _, p := range []struct {
		field string
		ref   Ref
	}{{"principal", d.Principal}, {"agent", d.Agent}} {
		if !v.DeclaresType(p.ref.Type) {
			return invalid("%s: type %q is not declared in the policy schema", p.field, p.ref.Type)
		}
	}
	var resourceTypes []string
	for _, a := range d.Scope {
		actions := []string{a}
		if a == AnyAction {
			actions = v.Actions()
		}
		for _, name := range actions {
			res, ok := v.ActionResources(name)
			if !ok {
				return invalid("scope: action %q is not declared in the policy schema (declared: %s)", name, strings.Join(v.Actions(), ", "))
			}
			resourceTypes = append(resourceTypes, res...)
		}
	}
	for i, r := range d.Resources {
		if !v.DeclaresType(r.Type) {
			return invalid("resources[%d]: type %q is not declared in the policy schema", i, r.Type)
		}
		if !slices.Contains(resourceTypes, r.Type) {
			slices.Sort(resourceTypes)
			return invalid("resources[%d]: %s is not a resource of the scope %v: its actions apply to %s",
				i, r, d.Scope, orNone(slices.Compact(resourceTypes)))
		}
	}
	return nil
}

// checkNotOver refuses an offer whose window has already closed: it could
// never be in force.
func checkNotOver(d *Delegation, now time.Time) error {
	if !d.ValidUntil.After(now) {
		return invalid("valid_until %s is not in the future: the delegation could never be in force", stamp(d.ValidUntil))
	}
	return nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no resource types"
	}
	return strings.Join(s, ", ")
}
