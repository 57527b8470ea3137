package pdp

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"

	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/reason"
)

// Acting on behalf of someone. The subject of a request is the actor;
// `context.on_behalf_of` ({"type":"user","id":"alice"}) names the person or
// organisation they act for. An action supports it by declaring, in its
// context, a `delegation` record (the engine fills it from the delegation
// records) and, usually, an `on_behalf_of_rel` record (relationship facts
// checked for the principal acted for, where `rel` checks the actor):
//
//	context: {
//	  on_behalf_of?: user,           // optional; the engine reads the raw value either way
//	  rel: { owner: Bool, view_statements: Bool },
//	  on_behalf_of_rel: { owner: Bool },
//	  delegation: { active: Bool, status: String, basis: String, chain: Set<String> },
//	}
//
// A policy then reads `context.delegation.active &&
// context.on_behalf_of_rel.owner && context.rel.view_statements`: the
// delegation records prove actor → delegation(s) → principal, SpiceDB proves
// principal → resource and, through the projected delegation
// relationships, the whole chain with its validity window and limits.
const (
	ContextOnBehalfOf    = "on_behalf_of"
	ContextDelegation    = "delegation"
	ContextOnBehalfOfRel = "on_behalf_of_rel"
)

// Delegation statuses as the engine places them in context.delegation.status.
// DelegationNotActing means the request acts for no one else (no
// on_behalf_of, or on behalf of the subject itself); the others come from
// the delegation records.
const (
	DelegationNotActing    = "not_acting"
	DelegationActive       = "active"
	DelegationNone         = "no_delegation"
	DelegationNotAccepted  = "not_accepted"
	DelegationExpired      = "expired"
	DelegationNotYetValid  = "not_yet_valid"
	DelegationRevoked      = "revoked"
	DelegationSuspended    = "suspended"
	DelegationOutOfScope   = "out_of_scope"
	DelegationNoCurrency   = "currency_missing"
	delegationAttrActive   = "active"
	delegationAttrStatus   = "status"
	delegationAttrBasis    = "basis"
	delegationAttrChain    = "chain"
	delegationAttrDepth    = "depth"
	delegationAttrActingOn = "principal"
)

// Reason codes of denies that acting on behalf of someone explains. They
// replace the generic not_permitted when no forbid policy gave a reason.
const (
	ReasonNoRelationship        = reason.NoRelationship
	ReasonDelegationOutOfScope  = reason.DelegationOutOfScope
	ReasonDelegationExpired     = reason.DelegationExpired
	ReasonDelegationNotAccepted = reason.DelegationNotAccepted
	ReasonDelegationRevoked     = reason.DelegationRevoked
	ReasonDelegationSuspended   = reason.DelegationSuspended
	ReasonDelegationNotYetValid = reason.DelegationNotYetValid
	// ReasonCurrencyMissing: a payment acting for someone names an amount
	// but no currency, and the delegation is limited to one currency.
	ReasonCurrencyMissing        = reason.CurrencyMissing
	reasonDelegationUnrecognised = reason.DelegationInvalid
)

// delegationReason maps a delegation status to the reason code of a deny.
func delegationReason(status string) string {
	switch status {
	case DelegationNone:
		return ReasonNoRelationship
	case DelegationOutOfScope:
		return ReasonDelegationOutOfScope
	case DelegationExpired:
		return ReasonDelegationExpired
	case DelegationNotAccepted:
		return ReasonDelegationNotAccepted
	case DelegationRevoked:
		return ReasonDelegationRevoked
	case DelegationSuspended:
		return ReasonDelegationSuspended
	case DelegationNotYetValid:
		return ReasonDelegationNotYetValid
	case DelegationNoCurrency:
		return ReasonCurrencyMissing
	}
	return reasonDelegationUnrecognised
}

// ObjectRef names an object in the relationship store's and the
// delegation records' terms: SpiceDB object type and id ("user", "alice").
type ObjectRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

func (o ObjectRef) String() string { return o.Type + ":" + o.ID }

// DelegationQuery asks whether Actor may act for Principal doing Action on
// Resource at Now; Amount and Currency are the request's context values of
// those names, for the limits a delegation carries.
type DelegationQuery struct {
	Actor     ObjectRef
	Principal ObjectRef
	Action    string
	Resource  ObjectRef
	Amount    *float64
	Currency  string
	Now       time.Time
}

// DelegationProof is what the delegation records say about a query: the
// status, and the delegation chain relied on (the matching delegation's id
// first, then its parent's, up to the root).
type DelegationProof struct {
	OnBehalfOf ObjectRef `json:"on_behalf_of"`
	Status     string    `json:"status"`
	Chain      []string  `json:"chain,omitempty"`
	Considered []string  `json:"considered,omitempty"`
	Basis      string    `json:"basis,omitempty"`
	// Since is when the chosen delegation came into force (accepted, or
	// created when it needs no acceptance).
	Since time.Time `json:"since,omitzero"`
}

// DelegationSource resolves delegations: every query of a batch at once
// (one proof per query, in order), so that a batch costs one read of the
// records. An error means the records could not be read: the engine
// denies every query of the call with facts_unavailable.
type DelegationSource interface {
	ResolveDelegations(ctx context.Context, qs []DelegationQuery) ([]DelegationProof, error)
}

// actionPlan is what the engine derives once per bundle and action from the
// action's declared context.
type actionPlan struct {
	rel        []string            // permissions checked for the subject
	onBehalf   []string            // permissions checked for the principal acted for
	delegation resolved.RecordType // declared shape of context.delegation; nil when absent
	consent    resolved.RecordType // declared shape of context.consent; nil when absent
	signals    resolved.RecordType // declared shape of context.signals; nil when absent
}

func planAction(shape resolved.RecordType) actionPlan {
	p := actionPlan{rel: boolAttrs(shape, ContextRel), onBehalf: boolAttrs(shape, ContextOnBehalfOfRel)}
	if a, ok := shape[ContextDelegation]; ok {
		if rec, ok := a.Type.(resolved.RecordType); ok {
			p.delegation = rec
		}
	}
	if a, ok := shape[ContextConsent]; ok {
		if rec, ok := a.Type.(resolved.RecordType); ok {
			p.consent = rec
		}
	}
	if a, ok := shape[ContextSignals]; ok {
		if rec, ok := a.Type.(resolved.RecordType); ok {
			p.signals = rec
		}
	}
	return p
}

// onBehalfOf reads context.on_behalf_of of a request: nil when absent,
// when it names the subject itself, or when the action does not support
// acting for someone. The type is mapped to the schema's entity type and
// then to its relationship-store object type.
func onBehalfOf(b *policy.Bundle, req Request, subject ObjectRef) (*ObjectRef, error) {
	raw, ok := req.Context[ContextOnBehalfOf]
	if !ok || raw == nil {
		return nil, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("context.on_behalf_of: want an object {\"type\":…,\"id\":…}, got %s", jsonKind(raw))
	}
	typ, _ := m["type"].(string)
	id, _ := m["id"].(string)
	if typ == "" || id == "" {
		return nil, fmt.Errorf("context.on_behalf_of: needs a type and an id")
	}
	et, ok := b.EntityType(typ)
	if !ok {
		return nil, fmt.Errorf("context.on_behalf_of: type %q is not declared in the schema", typ)
	}
	ref := ObjectRef{Type: b.ObjectType(et), ID: id}
	if ref == subject {
		return nil, nil
	}
	return &ref, nil
}

// guardDelegation applies the delegation guard after Cedar: a request
// that claims to act for someone else (context.on_behalf_of naming
// another principal than the subject) is denied unless the delegation
// records hold an active delegation for it, whatever the policies said.
// A claimed agency can then never widen what the subject may do on its
// own: a policy that reads context.delegation (a limit that applies only
// while "not_acting", say) cannot be sidestepped by naming someone at
// random. A request acting for the subject itself is not acting
// (onBehalfOf), so it carries no delegation and is not guarded.
func guardDelegation(d *Decision) {
	p := d.Delegation
	if p == nil || p.Status == DelegationActive || p.Status == DelegationNotActing {
		return
	}
	reason := delegationReason(p.Status)
	switch {
	case d.Allowed:
		d.Allowed = false
		d.Reasons = []string{reason}
		d.Obligations = []string{}
		if d.Message == "" {
			d.Message = fmt.Sprintf("acting on behalf of %s needs an active delegation; the delegation records say %s", p.OnBehalfOf, p.Status)
		}
	case len(d.Reasons) == 1 && d.Reasons[0] == ReasonNotPermitted:
		d.Reasons = []string{reason}
	default:
		d.Reasons = sortedUnique(append(d.Reasons, reason))
	}
}

// delegationQuery builds the query of a request acting for principal.
func delegationQuery(req Request, actor, principal, resource ObjectRef, now time.Time) DelegationQuery {
	q := DelegationQuery{Actor: actor, Principal: principal, Action: req.Action.Name, Resource: resource, Now: now}
	switch v := req.Context["amount"].(type) {
	case float64:
		q.Amount = &v
	case json.Number:
		if f, err := v.Float64(); err == nil {
			q.Amount = &f
		}
	case int:
		f := float64(v)
		q.Amount = &f
	case int64:
		f := float64(v)
		q.Amount = &f
	}
	if c, ok := req.Context["currency"].(string); ok {
		q.Currency = strings.ToUpper(c)
	}
	return q
}

// delegationRecord builds context.delegation with the attributes the
// action declares.
func delegationRecord(shape resolved.RecordType, p *DelegationProof) types.Record {
	status, basis, chain := DelegationNotActing, "", []string(nil)
	principal := ""
	if p != nil {
		status, basis, chain = p.Status, p.Basis, p.Chain
		principal = p.OnBehalfOf.String()
	}
	m := types.RecordMap{}
	// Attributes the engine does not know are left out: `pdp validate`
	// reports them (DelegationProblems).
	for k := range shape {
		switch k {
		case delegationAttrActive:
			m[k] = types.Boolean(status == DelegationActive)
		case delegationAttrStatus:
			m[k] = types.String(status)
		case delegationAttrBasis:
			m[k] = types.String(basis)
		case delegationAttrActingOn:
			m[k] = types.String(principal)
		case delegationAttrDepth:
			m[k] = types.Long(len(chain))
		case delegationAttrChain:
			vs := make([]types.Value, len(chain))
			for i, id := range chain {
				vs[i] = types.String(id)
			}
			m[k] = types.NewSet(vs...)
		}
	}
	return types.NewRecord(m)
}

// DeclaresDelegation reports whether some action of b declares
// context.delegation: then the PDP needs delegation records.
func DeclaresDelegation(b *policy.Bundle) bool {
	for _, p := range actionPlans(b) {
		if p.delegation != nil {
			return true
		}
	}
	return false
}

// DelegationProblems lists the attributes of declared context.delegation
// records that the engine does not fill, and wrongly typed ones: what `pdp
// validate` reports.
func DelegationProblems(b *policy.Bundle) []string {
	want := map[types.String]string{
		delegationAttrActive:   "Bool",
		delegationAttrStatus:   "String",
		delegationAttrBasis:    "String",
		delegationAttrActingOn: "String",
		delegationAttrDepth:    "Long",
		delegationAttrChain:    "Set<String>",
	}
	var out []string
	for uid, p := range actionPlans(b) {
		for k, a := range p.delegation {
			typ, ok := want[k]
			if !ok {
				out = append(out, fmt.Sprintf("action %q: context.delegation.%s is not filled by the engine (it fills %s)", uid.ID, k, "active, status, basis, principal, depth, chain"))
				continue
			}
			if got := typeName(a.Type); got != typ {
				out = append(out, fmt.Sprintf("action %q: context.delegation.%s must be %s, not %s", uid.ID, k, typ, got))
			}
		}
	}
	sort.Strings(out)
	return out
}

func typeName(t resolved.IsType) string {
	switch t := t.(type) {
	case resolved.BoolType:
		return "Bool"
	case resolved.StringType:
		return "String"
	case resolved.LongType:
		return "Long"
	case resolved.SetType:
		return "Set<" + typeName(t.Element) + ">"
	}
	return fmt.Sprintf("%T", t)
}
