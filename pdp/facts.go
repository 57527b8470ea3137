package pdp

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"

	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/reason"
)

// ContextRel is the context record that carries relationship facts. An
// action whose context declares `rel: { owner: Bool, … }` gets, for each Bool
// attribute, the answer of the relationship store to "does the principal
// hold this permission on the resource?" — derived from the schema, with no
// per-action code (ARCHITECTURE.md, fixed decision 2). A request cannot set
// it.
const ContextRel = "rel"

// Reason codes of relationship facts.
const (
	// ReasonFactsUnavailable: the relationship store could not answer, so
	// the decision fails closed.
	ReasonFactsUnavailable = reason.FactsUnavailable
	// ReasonFactsIncomplete: a relationship holds only under a condition
	// (caveat) whose context the request did not supply; it counts as not
	// holding.
	ReasonFactsIncomplete = reason.FactsIncomplete
)

// FactCheck asks whether a subject holds a permission on a resource, in
// the relationship store's terms (SpiceDB object types and ids). Context
// feeds caveats: the request's scalar context values and `now`.
type FactCheck struct {
	ResourceType string         `json:"resource_type"`
	ResourceID   string         `json:"resource_id"`
	Permission   string         `json:"permission"`
	SubjectType  string         `json:"subject_type"`
	SubjectID    string         `json:"subject_id"`
	Context      map[string]any `json:"context,omitempty"`
}

// Fact is the answer to a FactCheck. Conditional means the relationship
// holds only if caveat context the check lacked were supplied; Has is then
// false.
type Fact struct {
	FactCheck
	Has            bool     `json:"has"`
	Conditional    bool     `json:"conditional,omitempty"`
	MissingContext []string `json:"missing_context,omitempty"`
}

// FactSource answers relationship checks in one round trip, at a revision
// at least as fresh as every write it knows of, and returns that revision.
// An error means the facts are unknown: the engine denies.
type FactSource interface {
	CheckFacts(ctx context.Context, checks []FactCheck) (facts []Fact, revision string, err error)
}

// boolAttrs lists the Bool attributes of the context record key, sorted.
func boolAttrs(shape resolved.RecordType, key types.String) []string {
	a, ok := shape[key]
	if !ok {
		return nil
	}
	rec, ok := a.Type.(resolved.RecordType)
	if !ok {
		return nil
	}
	var names []string
	for k, attr := range rec {
		if _, isBool := attr.Type.(resolved.BoolType); isBool {
			names = append(names, string(k))
		}
	}
	sort.Strings(names)
	return names
}

// factChecks builds the checks of a plan for one request, asked for
// subject on the request's resource. A check whose permission cannot reach
// a caveat (caveated, from the SpiceDB schema; nil: any may) carries no
// caveat context, so that the fact cache keys it by the fact alone rather
// than also by the request's values and the second it was asked in.
func factChecks(b *policy.Bundle, plan []string, in builtInput, subject ObjectRef, caveats map[string]any, caveated map[string]map[string]bool) []FactCheck {
	out := make([]FactCheck, len(plan))
	obj := b.ObjectType(in.Resource.Type)
	for i, perm := range plan {
		ctx := caveats
		if caveated != nil {
			if names, ok := caveated[obj]; ok && !names[perm] {
				if _, known := names[perm]; known {
					ctx = nil
				}
			}
		}
		out[i] = FactCheck{
			ResourceType: obj,
			ResourceID:   string(in.Resource.ID),
			Permission:   perm,
			SubjectType:  subject.Type,
			SubjectID:    subject.ID,
			Context:      ctx,
		}
	}
	return out
}

// caveatContext passes the request's top-level scalar context values (the
// amount of a payment, say) and the decision time to caveats. Numbers
// become float64, as caveat contexts travel as protobuf Structs. The time
// is given to the second: validity windows are judged to the second, and
// checks within the same second can share cached answers (the fact cache
// keys on the whole caveat context).
func caveatContext(reqCtx map[string]any, now time.Time) map[string]any {
	out := map[string]any{ContextNow: now.UTC().Truncate(time.Second).Format(time.RFC3339)}
	for k, v := range reqCtx {
		if k == ContextNow || k == ContextRel {
			continue
		}
		switch v := v.(type) {
		case string, bool, float64:
			out[k] = v
		case json.Number:
			if f, err := v.Float64(); err == nil {
				out[k] = f
			}
		case int:
			out[k] = float64(v)
		case int64:
			out[k] = float64(v)
		}
	}
	return out
}

// relRecord turns facts into a Cedar record of Bool attributes: the plan's
// permissions, each true when its fact holds (all false without facts).
func relRecord(plan []string, facts []Fact) types.Record {
	m := make(types.RecordMap, len(plan))
	for _, p := range plan {
		m[types.String(p)] = types.False
	}
	for _, f := range facts {
		m[types.String(f.Permission)] = types.Boolean(f.Has)
	}
	return types.NewRecord(m)
}

// FactPlans lists, for every action of a bundle that declares relationship
// facts (in `rel` or `on_behalf_of_rel`), the permission names it needs,
// sorted and de-duplicated: what `pdp validate` checks against the SpiceDB
// schema.
func FactPlans(b *policy.Bundle) map[types.EntityUID][]string {
	out := map[types.EntityUID][]string{}
	for uid, p := range actionPlans(b) {
		if names := sortedUnique(append(slices.Clone(p.rel), p.onBehalf...)); len(names) > 0 {
			out[uid] = names
		}
	}
	return out
}

// actionPlans derives the plan of every action of a bundle.
func actionPlans(b *policy.Bundle) map[types.EntityUID]actionPlan {
	out := map[types.EntityUID]actionPlan{}
	for uid, a := range b.Schema().Actions {
		if a.AppliesTo == nil {
			continue
		}
		out[uid] = planAction(a.AppliesTo.Context)
	}
	return out
}
