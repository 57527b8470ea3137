package pdp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
	"github.com/google/uuid"

	"github.com/ciampdp/pdp/pdp/policy"
)

// ErrNotReady is returned when no valid policy bundle is loaded yet.
var ErrNotReady = errors.New("pdp: no valid policy version loaded")

// Context attributes the engine owns. A request cannot set them: values
// sent under these names are replaced (or dropped).
const (
	ContextActionProperties = "action_properties"
	ContextNow              = "now"
)

// BundleSource hands out the active policy bundle (nil before the first
// successful load). *policy.Reloader and *policy.Bundle implement it.
type BundleSource interface {
	Current() *policy.Bundle
}

// Components are the engine's dependencies, passed explicitly.
type Components struct {
	Bundles BundleSource
	// Facts answers relationship checks; nil when no relationship store is
	// configured (then an action that declares facts is denied with
	// facts_unavailable).
	Facts FactSource
	// Delegations resolves acting on behalf of someone; nil when no
	// delegation records are configured (then a request acting for
	// someone, on an action that declares context.delegation, is denied
	// with facts_unavailable).
	Delegations DelegationSource
	// Consent answers consent checks (the consent ledger); nil when none
	// is configured (then a purpose with a consent basis is denied with
	// facts_unavailable).
	Consent ConsentSource
	// Dormancy answers the dormancy guard (activity and revalidations);
	// nil when none is configured (then a bundle with dormancy rules
	// denies the requests they apply to with facts_unavailable).
	Dormancy DormancySource
	// Signals hands out received risk signals (the signal ledger); nil
	// when none is configured (then only velocity rules apply).
	Signals SignalSource
	// Velocity counts denied decisions for the registry's velocity rules;
	// nil turns them off.
	Velocity *Velocity
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Unsliced evaluates every policy of the bundle for every request
	// instead of the candidate slice: for benchmarks and diagnosis only.
	Unsliced bool
}

// Engine decides requests against the active policy bundle. It is safe for
// concurrent use.
type Engine struct {
	bundles     BundleSource
	facts       FactSource
	delegations DelegationSource
	consent     ConsentSource
	dormancy    DormancySource
	signals     SignalSource
	velocity    *Velocity
	log         *slog.Logger
	now         func() time.Time
	unsliced    bool
	// plans caches the fact plans of the active bundle, derived once per
	// bundle instead of once per decision.
	plans atomic.Pointer[bundlePlans]
}

// NewEngine builds an engine from its components.
func NewEngine(c Components) *Engine {
	e := &Engine{bundles: c.Bundles, facts: c.Facts, delegations: c.Delegations, consent: c.Consent, dormancy: c.Dormancy, signals: c.Signals, velocity: c.Velocity, log: c.Logger, now: c.Now, unsliced: c.Unsliced}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	return e
}

// Decide evaluates one request. A request that cannot be evaluated
// (incomplete, unknown type or action, a subject or resource type the
// action does not apply to, values that do not fit the schema,
// relationship facts that cannot be read) is a deny with a reason code, not
// an error; the only error is ErrNotReady. What the decision changes in
// the velocity and failed step-up counters, and the activity it marks,
// is made at once: a caller that records decisions uses DecideReserved.
func (e *Engine) Decide(ctx context.Context, req Request) (Decision, error) {
	d, p, err := e.DecideReserved(ctx, req)
	p.Commit(ctx)
	return d, err
}

// DecideReserved evaluates one request like Decide, and keeps back what
// the decision changes in the velocity and failed step-up counters and
// the activity it marks: the caller commits the Pending once the
// decision's record is durable, or drops it (nil: nothing to change).
func (e *Engine) DecideReserved(ctx context.Context, req Request) (Decision, *Pending, error) {
	b := e.bundles.Current()
	if b == nil {
		return Decision{}, nil, ErrNotReady
	}
	s := &singleJob{job: e.prepare(b, req)}
	j := &s.job
	j.pending, j.spare = &j.own, &s.reserved
	defer forgetOnPanic(ctx, &j.own)
	jobs := []*job{j}
	e.resolveDelegations(ctx, jobs)
	e.resolveConsents(ctx, b, jobs)
	e.resolveDormancy(ctx, b, jobs)
	var (
		facts    []Fact
		revision string
		err      error
	)
	if !j.done && len(j.checks) > 0 {
		facts, revision, err = e.fetchFacts(ctx, j.checks)
	}
	e.finish(b, j, facts, revision, err)
	return j.d, j.own, nil
}

// DecideBatch evaluates requests against one policy snapshot, in order,
// fetching the relationship facts of all of them in one round trip.
// Incomplete items get a deny with reason invalid_input. Like Decide, it
// makes the counters' changes at once.
func (e *Engine) DecideBatch(ctx context.Context, reqs []Request) ([]Decision, error) {
	ds, p, err := e.DecideBatchReserved(ctx, reqs)
	p.Commit(ctx)
	return ds, err
}

// DecideBatchReserved evaluates requests like DecideBatch and keeps back
// what they change in the counters, like DecideReserved (an item's
// changes are dropped by its index). Later items see the changes of
// earlier ones.
func (e *Engine) DecideBatchReserved(ctx context.Context, reqs []Request) ([]Decision, *Pending, error) {
	b := e.bundles.Current()
	if b == nil {
		return nil, nil, ErrNotReady
	}
	var p *Pending
	defer forgetOnPanic(ctx, &p)
	ds := e.decideBatch(ctx, b, reqs, &p)
	return ds, p, nil
}

// forgetOnPanic drops every change reserved in *p when deciding panics
// before the Pending reaches its caller (the api layer recovers panics),
// then panics on: a reservation never settled would hold back every
// later commit of its key.
func forgetOnPanic(ctx context.Context, p **Pending) {
	if v := recover(); v != nil {
		if *p != nil {
			(*p).dropAll()
			(*p).Commit(context.WithoutCancel(ctx))
		}
		panic(v)
	}
}

// finish hands a prepared job its facts (or the error that kept them
// away) and evaluates it.
func (e *Engine) finish(b *policy.Bundle, j *job, facts []Fact, revision string, factErr error) {
	if !j.done && len(j.checks) > 0 {
		if factErr != nil {
			j.deny(ReasonFactsUnavailable, factErr)
		} else {
			j.d.Facts = facts
			j.d.FactsRevision = revision
		}
	}
	if !j.done {
		e.evaluate(b, j)
	}
	counted := e.velocity != nil && j.signals != nil && j.pending != nil
	if counted && !j.d.Allowed && len(j.signals.ip) > 0 {
		e.velocity.observe(e.pendingFor(j), j.index, b.Signals(), j.signals.ip, entityKey(j.in.Principal), j.d.Reasons, j.start)
	}
	if counted && j.d.Allowed && j.signals.stepUp != nil {
		e.countStepUp(j)
	}
	if j.pending != nil && (e.dormancy != nil || e.consent != nil) {
		e.reserveActivity(b, j)
	}
	j.d.Duration = time.Since(j.began)
}

// fetchFacts asks the relationship store every check of a batch at once.
func (e *Engine) fetchFacts(ctx context.Context, checks []FactCheck) ([]Fact, string, error) {
	if len(checks) == 0 {
		return nil, "", nil
	}
	if e.facts == nil {
		return nil, "", errors.New("no relationship store is configured")
	}
	facts, rev, err := e.facts.CheckFacts(ctx, checks)
	if err == nil && len(facts) != len(checks) {
		err = fmt.Errorf("relationship store answered %d of %d checks", len(facts), len(checks))
	}
	if err != nil {
		e.log.WarnContext(ctx, "relationship facts unavailable; denying", "checks", len(checks), "err", err)
		return nil, "", fmt.Errorf("relationship facts unavailable: %w", err)
	}
	return facts, rev, nil
}

// Validate reports what a request lacks to be evaluated.
func (r Request) Validate() error {
	switch {
	case r.Subject.Type == "" || r.Subject.ID == "":
		return errors.New("subject needs a type and an id")
	case r.Action.Name == "":
		return errors.New("action needs a name")
	case r.Resource.Type == "" || r.Resource.ID == "":
		return errors.New("resource needs a type and an id")
	}
	return nil
}

func newDecisionID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 only fails when the random source does; fall back to v4.
		return uuid.NewString()
	}
	return id.String()
}

// job is one request on its way through a batch.
type job struct {
	start   time.Time // the decision's time (the engine's clock)
	began   time.Time // the wall clock at the start, for the duration
	d       Decision
	in      builtInput
	plan    actionPlan
	checks  []FactCheck // the rel checks, then the on_behalf_of_rel checks
	factsAt int
	// dq is the delegation question of a request acting for someone.
	dq *DelegationQuery
	// consent is the consent check of a bundle with a purposes registry.
	consent *consentJob
	// signals is the risk signal check of a bundle with a signals registry.
	signals *signalJob
	// pending is where the job reserves what it changes in the velocity
	// and failed step-up counters and the activity it marks, shared by
	// the jobs of a batch (made at the first change); nil for a search
	// candidate, which is no one's attempt nor anyone's activity. index is
	// the job's place in its batch.
	pending **Pending
	own     *Pending // a single decision's
	spare   *Pending // where own is made: allocated with the job
	index   int
	done    bool
}

// singleJob is a single decision's job with the Pending it reserves
// into, in one allocation (the job lives on the heap anyway).
type singleJob struct {
	job
	reserved Pending
}

func (j *job) deny(code string, err error) {
	j.d.Reasons = []string{code}
	j.d.Message = err.Error()
	j.done = true
}

// prepare maps the request onto the schema and plans its fact checks, and
// denies it at once when the relationship store would refuse those
// checks (invalid_id, context_too_large): one such item must not fail the
// facts of its whole batch.
func (e *Engine) prepare(b *policy.Bundle, req Request) job {
	j := e.planChecks(b, req)
	if !j.done {
		if code, err := checkFactInput(j.checks); err != nil {
			j.deny(code, err)
		}
	}
	return j
}

// planChecks maps the request onto the schema and plans its fact checks.
func (e *Engine) planChecks(b *policy.Bundle, req Request) job {
	start := e.now()
	j := job{start: start, began: time.Now(), d: Decision{
		ID:            newDecisionID(),
		Time:          start.UTC(),
		Application:   req.Application,
		PolicyVersion: b.Version(),
		Policies:      []string{},
		Reasons:       []string{},
		Obligations:   []string{},
	}}
	in, code, err := buildInput(b, req, start)
	j.in = in
	j.d.Input = in.Input
	if err != nil {
		j.deny(code, err)
		return j
	}
	bp := e.bundlePlans(b)
	j.plan = bp.byAct[in.Action]
	if reg := b.Purposes(); reg != nil {
		cj, code, err := planConsent(b, reg, req, in, start)
		if err != nil {
			j.deny(code, err)
			return j
		}
		j.consent = cj
	}
	if b.Signals() != nil {
		sj, err := planSignals(b, req, in)
		if err != nil {
			j.deny(ReasonInvalidInput, err)
			return j
		}
		j.signals = sj
	}
	if len(j.plan.rel) == 0 && len(j.plan.onBehalf) == 0 && j.plan.delegation == nil {
		return j
	}
	subject := ObjectRef{Type: b.ObjectType(in.Principal.Type), ID: string(in.Principal.ID)}
	caveats := caveatContext(req.Context, start)
	j.checks = factChecks(b, j.plan.rel, in, subject, caveats, bp.caveated)
	if len(j.plan.onBehalf) == 0 && j.plan.delegation == nil {
		return j
	}
	obo, err := onBehalfOf(b, req, subject)
	if err != nil {
		j.deny(ReasonInvalidInput, err)
		return j
	}
	if obo == nil {
		return j
	}
	j.checks = append(j.checks, factChecks(b, j.plan.onBehalf, in, *obo, caveats, bp.caveated)...)
	if j.plan.delegation != nil {
		resource := ObjectRef{Type: b.ObjectType(in.Resource.Type), ID: string(in.Resource.ID)}
		q := delegationQuery(req, subject, *obo, resource, start)
		j.dq = &q
	}
	return j
}

// evaluate runs Cedar on a prepared job whose facts are in.
func (e *Engine) evaluate(b *policy.Bundle, j *job) {
	in := &j.in
	if e.readSignals(b, j); j.done {
		j.d.Allowed = false
		return
	}
	if len(j.plan.rel) > 0 || len(j.plan.onBehalf) > 0 || j.plan.delegation != nil || j.plan.consent != nil || j.plan.signals != nil {
		m := in.Context.Map()
		if m == nil {
			m = types.RecordMap{}
		}
		n := min(len(j.plan.rel), len(j.d.Facts))
		if len(j.plan.rel) > 0 {
			m[ContextRel] = relRecord(j.plan.rel, j.d.Facts[:n])
		}
		if len(j.plan.onBehalf) > 0 {
			m[ContextOnBehalfOfRel] = relRecord(j.plan.onBehalf, j.d.Facts[n:])
		}
		if j.plan.delegation != nil {
			m[ContextDelegation] = delegationRecord(j.plan.delegation, j.d.Delegation)
		}
		if j.plan.consent != nil {
			m[ContextConsent] = consentRecord(j.plan.consent, j.d.Consent)
		}
		if j.plan.signals != nil {
			m[ContextSignals] = signalsRecord(j.plan.signals, j.d.Signals)
		}
		in.Context = types.NewRecord(m)
	}
	rec := &recorder{entities: b.Entities(), principal: in.principal, resource: in.resource}
	rec.seen = append(rec.seenBuf[:0], in.principal)
	if in.Resource != in.Principal {
		rec.seen = append(rec.seen, in.resource)
	}
	var policies cedar.PolicyIterator = b.PolicySet()
	if !e.unsliced {
		policies = b.Candidates(in.Principal, in.Action, in.Resource, in.principalAnc, in.resourceAnc)
	}
	dec, diag := cedar.Authorize(policies, rec, in.CedarRequest())
	j.d.Input = in.Input
	j.d.Input.Entities = rec.seen
	explain(b, &j.d, dec, diag)
	refineDeny(&j.d, len(j.checks) > 0)
	guardDelegation(&j.d)
	guardConsent(&j.d)
	guardSignals(&j.d)
	guardDormancy(&j.d)
	if !j.d.Allowed {
		for _, f := range j.d.Facts {
			if f.Conditional {
				j.d.Reasons = sortedUnique(append(j.d.Reasons, ReasonFactsIncomplete))
				break
			}
		}
	}
}

// explain fills the determining policies, reason codes, obligations and
// evaluation errors from Cedar's diagnostic, in a stable order.
func explain(b *policy.Bundle, d *Decision, dec types.Decision, diag types.Diagnostic) {
	d.Allowed = dec == types.Allow
	for _, r := range diag.Reasons {
		d.Policies = append(d.Policies, string(r.PolicyID))
		p, ok := b.Policy(r.PolicyID)
		if !ok {
			continue
		}
		if p.Obligation != "" {
			d.Obligations = append(d.Obligations, p.Obligation)
		}
		if !d.Allowed {
			code := p.Reason
			if code == "" {
				code = ReasonForbidden
			}
			d.Reasons = append(d.Reasons, code)
		}
	}
	for _, er := range diag.Errors {
		d.Errors = append(d.Errors, EvalError{PolicyID: string(er.PolicyID), Message: er.Message})
	}
	if !d.Allowed && len(diag.Reasons) == 0 {
		d.Reasons = append(d.Reasons, ReasonNotPermitted)
		if len(diag.Errors) > 0 {
			d.Reasons = append(d.Reasons, ReasonPolicyError)
		}
	}
	d.Policies = sortedUnique(d.Policies)
	d.Reasons = sortedUnique(d.Reasons)
	d.Obligations = sortedUnique(d.Obligations)
	sortErrors(d.Errors)
}

// builtInput is the Cedar input plus what the evaluation needs beside it.
type builtInput struct {
	Input
	principal, resource       types.Entity
	principalAnc, resourceAnc []types.EntityUID
}

// buildInput maps an AuthZEN request onto the bundle's schema. On failure it
// returns the reason code and a one-line explanation.
func buildInput(b *policy.Bundle, req Request, now time.Time) (builtInput, string, error) {
	var in builtInput
	if err := req.Validate(); err != nil {
		return in, ReasonInvalidInput, err
	}
	pt, ok := b.EntityType(req.Subject.Type)
	if !ok {
		return in, ReasonUnknownEntityType, fmt.Errorf("subject type %q is not declared in the schema", req.Subject.Type)
	}
	rt, ok := b.EntityType(req.Resource.Type)
	if !ok {
		return in, ReasonUnknownEntityType, fmt.Errorf("resource type %q is not declared in the schema", req.Resource.Type)
	}
	aUID, ctxType, ok := b.Action(req.Action.Name)
	if !ok {
		return in, ReasonUnknownAction, fmt.Errorf("action %q is not declared in the schema", req.Action.Name)
	}
	if err := checkAppliesTo(b, aUID, pt, rt); err != nil {
		return in, ReasonEntityTypeMismatch, err
	}
	in.Principal = types.NewEntityUID(pt, types.String(req.Subject.ID))
	in.Action = aUID
	in.Resource = types.NewEntityUID(rt, types.String(req.Resource.ID))

	var err error
	if in.principal, err = entityFor(b, in.Principal, req.Subject.Properties, "subject.properties"); err != nil {
		return in, ReasonInvalidInput, err
	}
	if in.resource, err = entityFor(b, in.Resource, req.Resource.Properties, "resource.properties"); err != nil {
		return in, ReasonInvalidInput, err
	}
	in.principalAnc = b.Ancestors(in.Principal)
	in.resourceAnc = b.Ancestors(in.Resource)

	if in.Context, err = contextFor(b, ctxType, req, now); err != nil {
		return in, ReasonInvalidInput, err
	}
	return in, "", nil
}

// checkAppliesTo refuses a principal or resource type the action does not
// apply to (the schema's appliesTo). Without it a request could pose as any
// entity the policies name: Cedar's `in` holds for an entity and itself, so
// a subject of type role would take the permits of `principal in
// Role::"admin"`, and a group, an organisation or a resource named as the
// subject would be evaluated as if it could act. Cedar's validator only
// type-checks the policies against appliesTo; requests are the engine's.
func checkAppliesTo(b *policy.Bundle, action types.EntityUID, pt, rt types.EntityType) error {
	if appliesTo(b, action, pt, rt) {
		return nil
	}
	principals, resources := b.AppliesTo(action)
	if !slices.Contains(principals, pt) {
		return fmt.Errorf("subject type %s is not one action %q applies to (%s)", pt, action.ID, typeList(principals))
	}
	if !slices.Contains(resources, rt) {
		return fmt.Errorf("resource type %s is not one action %q applies to (%s)", rt, action.ID, typeList(resources))
	}
	return nil
}

// appliesTo reports whether the schema lets action apply to a principal
// of type pt and a resource of type rt (an action without appliesTo
// applies to none).
func appliesTo(b *policy.Bundle, action types.EntityUID, pt, rt types.EntityType) bool {
	principals, resources := b.AppliesTo(action)
	return slices.Contains(principals, pt) && slices.Contains(resources, rt)
}

// typeList names entity types for a message: "User, Organisation", or
// "none" for an action that applies to nothing.
func typeList(ts []types.EntityType) string {
	if len(ts) == 0 {
		return "none"
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// entityFor returns the trusted entity when the bundle knows it (request
// properties are then ignored), else an entity built from the properties.
func entityFor(b *policy.Bundle, uid types.EntityUID, props map[string]any, path string) (types.Entity, error) {
	if e, ok := b.Entities()[uid]; ok {
		return e, nil
	}
	attrs, err := toRecord(b.Shape(uid.Type), props, b.EntityType, path)
	if err != nil {
		return types.Entity{}, err
	}
	return types.Entity{UID: uid, Attributes: attrs}, nil
}

// contextFor builds the Cedar context from the request context (declared
// attributes only) and the engine-owned attributes.
func contextFor(b *policy.Bundle, shape resolved.RecordType, req Request, now time.Time) (types.Record, error) {
	rm := make(types.RecordMap, len(req.Context)+2)
	for k, v := range req.Context {
		if engineOwned(k) {
			continue // engine-owned: never taken from the request
		}
		attr, ok := shape[types.String(k)]
		if !ok || v == nil {
			continue
		}
		cv, err := toValue(attr.Type, v, b.EntityType, "context."+k)
		if err != nil {
			return types.Record{}, err
		}
		rm[types.String(k)] = cv
	}
	if a, ok := shape[ContextActionProperties]; ok && len(req.Action.Properties) > 0 {
		cv, err := toValue(a.Type, req.Action.Properties, b.EntityType, "action.properties")
		if err != nil {
			return types.Record{}, err
		}
		rm[ContextActionProperties] = cv
	}
	if a, ok := shape[ContextNow]; ok {
		if et, ok := a.Type.(resolved.ExtensionType); ok && et == "datetime" {
			rm[ContextNow] = types.NewDatetime(now.UTC())
		}
	}
	if len(rm) == 0 {
		return types.Record{}, nil
	}
	return types.NewRecord(rm), nil
}

// recorder is the entity store of one evaluation: the request's principal
// and resource over the bundle's trusted entities. It remembers every
// entity the evaluation read, which is what the decision record keeps.
type recorder struct {
	entities            types.EntityMap
	principal, resource types.Entity
	seen                []types.Entity // principal, resource, then in order of first read
	seenBuf             [6]types.Entity
}

func (r *recorder) Get(uid types.EntityUID) (types.Entity, bool) {
	var (
		e  types.Entity
		ok bool
	)
	switch uid {
	case r.principal.UID:
		return r.principal, true
	case r.resource.UID:
		return r.resource, true
	}
	e, ok = r.entities[uid]
	if !ok {
		return e, false
	}
	for _, s := range r.seen {
		if s.UID == uid {
			return e, true
		}
	}
	r.seen = append(r.seen, e)
	return e, true
}

// engineOwned reports whether a context attribute is set by the engine
// only, never taken from a request.
func engineOwned(k string) bool {
	switch k {
	case ContextNow, ContextActionProperties, ContextRel, ContextOnBehalfOfRel, ContextDelegation, ContextConsent, ContextSignals:
		return true
	}
	return false
}

// refineDeny replaces the generic not_permitted of a deny that no forbid
// policy explained with what the facts say: the status of the delegation
// the request relied on, or no_relationship when no relationship fact
// held at all.
func refineDeny(d *Decision, hadChecks bool) {
	if d.Allowed || len(d.Reasons) != 1 || d.Reasons[0] != ReasonNotPermitted {
		return
	}
	if p := d.Delegation; p != nil && p.Status != DelegationActive && p.Status != DelegationNotActing {
		d.Reasons = []string{delegationReason(p.Status)}
		return
	}
	if !hadChecks {
		return
	}
	for _, f := range d.Facts {
		if f.Has || f.Conditional {
			return
		}
	}
	d.Reasons = []string{ReasonNoRelationship}
}
