package pdp

import (
	"strings"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/zedschema"
)

// bundlePlans are the plans of one bundle, by action.
type bundlePlans struct {
	bundle  *policy.Bundle
	byAct   map[types.EntityUID]actionPlan
	relByAc map[types.EntityUID][]string
	// caveated says which SpiceDB names may reach a caveat (nil: assume
	// all may); checks of the others carry no caveat context.
	caveated map[string]map[string]bool
}

// plansFor returns the relationship fact plans (the `rel` permissions) of
// b, by action.
func (e *Engine) plansFor(b *policy.Bundle) map[types.EntityUID][]string {
	return e.bundlePlans(b).relByAc
}

// bundlePlans returns the action plans of b, computing them on the first
// decision that uses a new bundle.
func (e *Engine) bundlePlans(b *policy.Bundle) *bundlePlans {
	if p := e.plans.Load(); p != nil && p.bundle == b {
		return p
	}
	p := &bundlePlans{bundle: b, byAct: actionPlans(b), relByAc: map[types.EntityUID][]string{}}
	if zed := b.SpiceDBSchema(); strings.TrimSpace(zed) != "" {
		if c, err := zedschema.CaveatedNames(zed); err == nil {
			p.caveated = c
		}
	}
	for uid, ap := range p.byAct {
		if len(ap.rel) > 0 {
			p.relByAc[uid] = ap.rel
		}
	}
	e.plans.Store(p)
	return p
}
