package sources

import (
	"slices"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
)

// Vocabulary answers what the bundle in force declares, in the
// relationship store's terms (entity types by their object type, "user"
// for User), for the delegation and consent services, which refuse
// requests naming anything else. Without a bundle it declares nothing.
type Vocabulary struct{ Bundles pdp.BundleSource }

var (
	_ delegation.Vocabulary = Vocabulary{}
	_ consent.TypeChecker   = Vocabulary{}
)

// DeclaresType reports whether typ is the object type of a declared
// entity (or enumerated) type.
func (v Vocabulary) DeclaresType(typ string) bool {
	b := v.Bundles.Current()
	if b == nil {
		return false
	}
	s := b.Schema()
	for et := range s.Entities {
		if b.ObjectType(et) == typ {
			return true
		}
	}
	for et := range s.Enums {
		if b.ObjectType(et) == typ {
			return true
		}
	}
	return false
}

// ActionResources returns the object types of the resources a declared
// action applies to.
func (v Vocabulary) ActionResources(action string) ([]string, bool) {
	b := v.Bundles.Current()
	if b == nil {
		return nil, false
	}
	uid, _, ok := b.Action(action)
	if !ok {
		return nil, false
	}
	var out []string
	if at := b.Schema().Actions[uid].AppliesTo; at != nil {
		for _, et := range at.Resources {
			out = append(out, b.ObjectType(et))
		}
	}
	slices.Sort(out)
	return slices.Compact(out), true
}

// Actions lists the declared actions.
func (v Vocabulary) Actions() []string {
	b := v.Bundles.Current()
	if b == nil {
		return nil
	}
	return b.ActionNames()
}
