package pdp

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/zedschema"
)

// ReplayOptions qualify a replay.
type ReplayOptions struct {
	// RequestRedacted: parts of the recorded request are hidden (redacted
	// in the trail). The request-level checks (types, action, purpose,
	// on_behalf_of) are then not re-run: an evaluated decision is replayed
	// from its recorded input alone, and one denied before evaluation is
	// not replayable.
	RequestRedacted bool
}

// Outcomes of replaying a recorded decision.
const (
	// Reproduced: the replay gave the recorded answer (decision,
	// determining policies, reasons, obligations and evaluation errors).
	Reproduced = "reproduced"
	// Differs: the replay gave another answer; Replayed.Differences says how.
	Differs = "differs"
	// NotReplayable: the record lacks what the replay needs (a fact the
	// bundle now asks for, a redacted value, a state of the stores that
	// cannot be recomputed); Replayed.Missing says what.
	NotReplayable = "not_replayable"
)

// Replayed is the result of replaying one recorded decision.
type Replayed struct {
	Outcome string `json:"outcome"`
	// Decision is the replayed answer (ID, time and input are the
	// recorded ones).
	Decision Decision `json:"decision"`
	// Differences names each field that differs: "decision: true → false".
	Differences []string `json:"differences,omitempty"`
	// Missing names what a not_replayable record lacks.
	Missing []string `json:"missing,omitempty"`
}

// Replay re-evaluates a recorded decision under bundle b from what the
// record holds: the request as received and the decision with its complete
// Cedar input (every entity the evaluation read, the context with the
// relationship, delegation and consent facts as they were at the time). No
// live store is asked: the recorded facts are the facts. With the bundle
// the decision named, the answer must be the recorded one; with another
// (what-if) it is what that bundle would have answered to the same facts.
//
// A decision the engine answered before any policy ran (unknown type or
// action, invalid input, purpose not allowed) is replayed by running the
// same checks against b. A decision denied because a store did not answer
// (facts_unavailable) cannot be recomputed and is not_replayable, as is a
// record whose input lacks a fact b's schema asks for.
//
// A Replayer is safe for concurrent use; it keeps what it derives from each
// bundle (the facts each action declares).
func (r *Replayer) Replay(b *policy.Bundle, req Request, rec Decision, opts ReplayOptions) Replayed {
	plans := r.plans(b)
	d := rec
	d.Policies, d.Reasons, d.Obligations, d.Errors, d.Message = []string{}, []string{}, []string{}, nil, ""
	d.Allowed = false
	out := Replayed{Outcome: Reproduced}

	if slices.Contains(rec.Reasons, ReasonFactsUnavailable) {
		out.Outcome, out.Missing = NotReplayable, []string{"facts: the stores did not answer when the decision was made (" + ReasonFactsUnavailable + ")"}
		out.Decision = rec
		return out
	}
	evaluated := len(rec.Input.Entities) > 0
	if opts.RequestRedacted {
		if !evaluated {
			out.Outcome, out.Decision = NotReplayable, rec
			out.Missing = []string{"request: redacted, and the decision stopped before evaluation (" + strings.Join(rec.Reasons, ",") + ")"}
			return out
		}
		return r.evaluate(b, plans, rec, d, out)
	}
	in, code, err := buildInput(b, req, rec.Time)
	if err == nil && b.Purposes() != nil {
		_, code, err = planConsent(b, b.Purposes(), req, in, rec.Time)
	}
	if err == nil && b.Signals() != nil {
		if _, err = planSignals(b, req, in); err != nil {
			code = ReasonInvalidInput
		}
	}
	if err == nil {
		if plan := plans[in.Action]; len(plan.onBehalf) > 0 || plan.delegation != nil {
			subject := ObjectRef{Type: b.ObjectType(in.Principal.Type), ID: string(in.Principal.ID)}
			if _, err = onBehalfOf(b, req, subject); err != nil {
				code = ReasonInvalidInput
			}
		}
	}
	if err != nil {
		d.Reasons, d.Message = []string{code}, err.Error()
		out.Decision = d
		out.diff(rec)
		return out
	}
	if !evaluated && (slices.Contains(rec.Reasons, ReasonInvalidID) || slices.Contains(rec.Reasons, ReasonContextTooLarge)) {
		if code, err := replayRefused(b, r.caveatedNames(b), plans[in.Action], req, in, rec.Time); err != nil {
			d.Reasons, d.Message = []string{code}, err.Error()
			out.Decision = d
			out.diff(rec)
			return out
		}
	}
	if !evaluated {
		// The engine stopped before Cedar, but b lets the request through:
		// the record holds no input to evaluate.
		if len(rec.Reasons) == 1 && rec.Reasons[0] == ReasonConsentMissing && rec.Consent != nil {
			// No data subject was found: the consent guard's own deny.
			d.Reasons, d.Consent = []string{ReasonConsentMissing}, rec.Consent
			out.Decision = d
			out.diff(rec)
			return out
		}
		out.Outcome, out.Missing = NotReplayable, []string{"decision.input: the recorded decision stopped before evaluation (" + strings.Join(rec.Reasons, ",") + ")"}
		out.Decision = rec
		return out
	}
	return r.evaluate(b, plans, rec, d, out)
}

// checkRecordedTypes holds a recorded input to what buildInput holds a
// request to under b: its types and action declared in b's schema (a
// bundle that dropped them answers unknown_entity_type or unknown_action,
// as the engine would), and the types ones the action applies to.
func checkRecordedTypes(b *policy.Bundle, pt types.EntityType, action types.EntityUID, rt types.EntityType) (string, error) {
	sc := b.Schema()
	declared := func(t types.EntityType) bool {
		_, entity := sc.Entities[t]
		_, enum := sc.Enums[t]
		return entity || enum
	}
	switch {
	case !declared(pt):
		return ReasonUnknownEntityType, fmt.Errorf("subject type %q is not declared in the schema", pt)
	case !declared(rt):
		return ReasonUnknownEntityType, fmt.Errorf("resource type %q is not declared in the schema", rt)
	}
	if _, ok := sc.Actions[action]; !ok {
		return ReasonUnknownAction, fmt.Errorf("action %q is not declared in the schema", action.ID)
	}
	if err := checkAppliesTo(b, action, pt, rt); err != nil {
		return ReasonEntityTypeMismatch, err
	}
	return "", nil
}

// evaluate runs Cedar and the engine's post-steps on the recorded input.
// The recorded types and action are checked against b's schema first
// (checkRecordedTypes): a redacted record skips the request-level checks,
// and a record made before b (or before the engine checked appliesTo) may
// name a type or an action b refuses.
func (r *Replayer) evaluate(b *policy.Bundle, plans map[types.EntityUID]actionPlan, rec, d Decision, out Replayed) Replayed {
	in := rec.Input
	if reason, err := checkRecordedTypes(b, in.Principal.Type, in.Action, in.Resource.Type); err != nil {
		d.Reasons, d.Message = []string{reason}, err.Error()
		d.PolicyVersion = b.Version()
		out.Decision = d
		out.diff(rec)
		return out
	}
	if missing := missingFacts(plans[rec.Input.Action], rec); len(missing) > 0 {
		out.Outcome, out.Missing, out.Decision = NotReplayable, missing, rec
		return out
	}

	ents := replayEntities{recorded: make(types.EntityMap, len(rec.Input.Entities)), bundle: b.Entities()}
	for _, e := range rec.Input.Entities {
		ents.recorded[e.UID] = e
	}
	dec, diag := cedar.Authorize(b.PolicySet(), ents, rec.Input.CedarRequest())
	explain(b, &d, dec, diag)
	refineDeny(&d, len(rec.Facts) > 0)
	guardDelegation(&d)
	guardConsent(&d)
	guardSignals(&d)
	guardDormancy(&d)
	if !d.Allowed {
		for _, f := range d.Facts {
			if f.Conditional {
				d.Reasons = sortedUnique(append(d.Reasons, ReasonFactsIncomplete))
				break
			}
		}
	}
	d.PolicyVersion = b.Version()
	out.Decision = d
	out.diff(rec)
	return out
}

// diff compares the replayed answer with the recorded one.
func (r *Replayed) diff(rec Decision) {
	d := r.Decision
	add := func(field string, was, now any) {
		r.Differences = append(r.Differences, fmt.Sprintf("%s: %v → %v", field, was, now))
	}
	if d.Allowed != rec.Allowed {
		add("decision", rec.Allowed, d.Allowed)
	}
	if !slices.Equal(d.Policies, rec.Policies) {
		add("policies", rec.Policies, d.Policies)
	}
	if !slices.Equal(d.Reasons, rec.Reasons) {
		add("reasons", rec.Reasons, d.Reasons)
	}
	if !slices.Equal(d.Obligations, rec.Obligations) {
		add("obligations", rec.Obligations, d.Obligations)
	}
	if !slices.Equal(d.Errors, rec.Errors) {
		add("errors", rec.Errors, d.Errors)
	}
	if len(r.Differences) > 0 {
		r.Outcome = Differs
	}
}

// missingFacts names the engine-owned context facts the action's plan
// (from the replaying bundle's schema) needs that the recorded input does
// not hold: the replay would have to guess them.
func missingFacts(plan actionPlan, rec Decision) []string {
	var missing []string
	for _, part := range []struct {
		key   types.String
		attrs []string
	}{{ContextRel, plan.rel}, {ContextOnBehalfOfRel, plan.onBehalf}} {
		v, _ := rec.Input.Context.Get(part.key)
		got, _ := v.(types.Record)
		for _, name := range part.attrs {
			if _, ok := got.Get(types.String(name)); !ok {
				missing = append(missing, fmt.Sprintf("decision.input.context.%s.%s", part.key, name))
			}
		}
	}
	if plan.delegation != nil {
		if _, ok := rec.Input.Context.Get(ContextDelegation); !ok {
			missing = append(missing, "decision.input.context."+ContextDelegation)
		}
	}
	if plan.consent != nil {
		if _, ok := rec.Input.Context.Get(ContextConsent); !ok {
			missing = append(missing, "decision.input.context."+ContextConsent)
		}
	}
	slices.Sort(missing)
	return missing
}

// Replayer replays recorded decisions (see Replay).
type Replayer struct {
	mu       sync.Mutex
	cache    map[*policy.Bundle]map[types.EntityUID]actionPlan
	caveated map[*policy.Bundle]map[string]map[string]bool // per bundle, as the engine's plans hold them
}

// NewReplayer returns a Replayer.
func NewReplayer() *Replayer {
	return &Replayer{cache: map[*policy.Bundle]map[types.EntityUID]actionPlan{},
		caveated: map[*policy.Bundle]map[string]map[string]bool{}}
}

func (r *Replayer) plans(b *policy.Bundle) map[types.EntityUID]actionPlan {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.cache[b]
	if !ok {
		p = actionPlans(b)
		r.cache[b] = p
	}
	return p
}

// caveatedNames is zedschema.CaveatedNames of b's SpiceDB schema, compiled
// once per bundle (nil: every check carries the context, as the engine
// does).
func (r *Replayer) caveatedNames(b *policy.Bundle) map[string]map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.caveated[b]
	if !ok {
		if zed := b.SpiceDBSchema(); strings.TrimSpace(zed) != "" {
			c, _ = zedschema.CaveatedNames(zed)
		}
		r.caveated[b] = c
	}
	return c
}

// replayEntities serves the recorded entities first (what the decision
// read), then the bundle's (entities the recorded evaluation never read,
// which a what-if bundle's policies may).
type replayEntities struct {
	recorded, bundle types.EntityMap
}

func (r replayEntities) Get(uid types.EntityUID) (types.Entity, bool) {
	if e, ok := r.recorded[uid]; ok {
		return e, true
	}
	e, ok := r.bundle[uid]
	return e, ok
}
