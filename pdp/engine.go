package pdp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	Logger  *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Unsliced evaluates every policy of the bundle for every request
	// instead of the candidate slice: for benchmarks and diagnosis only.
	Unsliced bool
}

// Engine decides requests against the active policy bundle. It is safe for
// concurrent use.
type Engine struct {
	bundles  BundleSource
	log      *slog.Logger
	now      func() time.Time
	unsliced bool
}

// NewEngine builds an engine from its components.
func NewEngine(c Components) *Engine {
	e := &Engine{bundles: c.Bundles, log: c.Logger, now: c.Now, unsliced: c.Unsliced}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	return e
}

// Decide evaluates one request. A request that cannot be evaluated
// (incomplete, unknown type or action, values that do not fit the schema) is
// a deny with a reason code, not an error; the only error is ErrNotReady.
func (e *Engine) Decide(ctx context.Context, req Request) (Decision, error) {
	b := e.bundles.Current()
	if b == nil {
		return Decision{}, ErrNotReady
	}
	return e.decide(b, req), nil
}

// DecideBatch evaluates requests against one policy snapshot, in order.
// Incomplete items get a deny with reason invalid_input.
func (e *Engine) DecideBatch(ctx context.Context, reqs []Request) ([]Decision, error) {
	b := e.bundles.Current()
	if b == nil {
		return nil, ErrNotReady
	}
	out := make([]Decision, len(reqs))
	for i, r := range reqs {
		if i%64 == 63 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("batch interrupted at item %d: %w", i, err)
			}
		}
		out[i] = e.decide(b, r)
	}
	return out, nil
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

func (e *Engine) decide(b *policy.Bundle, req Request) Decision {
	start := e.now()
	d := Decision{
		ID:            newDecisionID(),
		Time:          start.UTC(),
		Application:   req.Application,
		PolicyVersion: b.Version(),
		Policies:      []string{},
		Reasons:       []string{},
		Obligations:   []string{},
	}
	in, code, err := buildInput(b, req, start)
	d.Input = in.Input
	if err != nil {
		d.Reasons = []string{code}
		d.Message = err.Error()
		d.Duration = time.Since(start)
		return d
	}

	rec := &recorder{entities: b.Entities(), principal: in.principal, resource: in.resource, seen: make(types.EntityMap, 4)}
	var policies cedar.PolicyIterator = b.PolicySet()
	if !e.unsliced {
		policies = b.Candidates(in.Principal, in.Action, in.Resource, in.principalAnc, in.resourceAnc)
	}
	dec, diag := cedar.Authorize(policies, rec, in.CedarRequest())
	rec.seen[in.Principal] = in.principal
	rec.seen[in.Resource] = in.resource
	d.Input.Entities = rec.seen
	e.explain(b, &d, dec, diag)
	d.Duration = time.Since(start)
	return d
}

// explain fills the determining policies, reason codes, obligations and
// evaluation errors from Cedar's diagnostic, in a stable order.
func (e *Engine) explain(b *policy.Bundle, d *Decision, dec types.Decision, diag types.Diagnostic) {
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
	ctx := make(map[string]any, len(req.Context)+1)
	for k, v := range req.Context {
		if k == ContextNow || k == ContextActionProperties {
			continue
		}
		ctx[k] = v
	}
	if len(req.Action.Properties) > 0 {
		ctx[ContextActionProperties] = req.Action.Properties
	}
	rec, err := toRecord(shape, ctx, b.EntityType, "context")
	if err != nil {
		return types.Record{}, err
	}
	if a, ok := shape[ContextNow]; ok {
		if et, ok := a.Type.(resolved.ExtensionType); ok && et == "datetime" {
			m := rec.Map()
			m[ContextNow] = types.NewDatetime(now.UTC())
			rec = types.NewRecord(m)
		}
	}
	return rec, nil
}

// recorder is the entity store of one evaluation: the request's principal
// and resource over the bundle's trusted entities. It remembers every
// entity the evaluation read, which is what the decision record keeps.
type recorder struct {
	entities            types.EntityMap
	principal, resource types.Entity
	seen                types.EntityMap
}

func (r *recorder) Get(uid types.EntityUID) (types.Entity, bool) {
	var (
		e  types.Entity
		ok bool
	)
	switch uid {
	case r.principal.UID:
		e, ok = r.principal, true
	case r.resource.UID:
		e, ok = r.resource, true
	default:
		e, ok = r.entities[uid]
	}
	if ok {
		r.seen[uid] = e
	}
	return e, ok
}
