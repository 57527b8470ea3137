package authzen

import "github.com/ciampdp/pdp/pdp"

// DecisionResponse is the AuthZEN Decision object: the answer to a single
// evaluation and each element of a batch answer.
type DecisionResponse struct {
	Decision bool             `json:"decision"`
	Context  *DecisionContext `json:"context,omitempty"`
}

// DecisionContext is the implementation-defined "context" of a decision:
// what an application needs to act on it and to find its record. Build it
// with NewDecisionResponse, which never leaves an array nil: AuthZEN clients
// get [] rather than null. (A MarshalJSON doing the same would cost more
// than three times the encoding time on the hot path.)
type DecisionContext struct {
	DecisionID string `json:"decision_id"`
	// PolicyVersion is the content hash of the policy bundle that decided.
	PolicyVersion string `json:"policy_version"`
	// Policies are the ids of the determining policies.
	Policies []string `json:"policies"`
	// Reasons are stable reason codes (empty for an allow).
	Reasons     []string        `json:"reasons"`
	Obligations []string        `json:"obligations"`
	Message     string          `json:"message,omitempty"`
	Errors      []pdp.EvalError `json:"errors,omitempty"`
	// Delegations are the delegation ids the decision relied on when the
	// subject acted on behalf of someone (the subject's own delegation
	// first, then its parents'), and DelegationStatus what the records
	// said about it.
	Delegations      []string `json:"delegations,omitempty"`
	DelegationStatus string   `json:"delegation_status,omitempty"`
	// CachedFrom is set by a sidecar answering from its cache: the id of
	// the central decision it repeats (DecisionID is the answer's own).
	CachedFrom string `json:"cached_from,omitempty"`
	// Degraded is set by a sidecar answering from a stale cache entry
	// while the central PDP is unreachable (only for actions configured so).
	Degraded bool `json:"degraded,omitempty"`
}

// noStrings is the shared empty slice that marshals as [] instead of null.
// It has zero capacity, so appending to it never writes through.
var noStrings = []string{}

func nonNil(s []string) []string {
	if s == nil {
		return noStrings
	}
	return s
}

// NewDecisionResponse builds the wire answer for decision d. With compact
// the context is left out, giving exactly {"decision":true|false}: an option
// for interop harnesses that compare batch items string for string.
func NewDecisionResponse(d pdp.Decision, compact bool) DecisionResponse {
	r := DecisionResponse{Decision: d.Allowed}
	if compact {
		return r
	}
	r.Context = &DecisionContext{
		DecisionID:    d.ID,
		PolicyVersion: d.PolicyVersion.Hash,
		Policies:      nonNil(d.Policies),
		Reasons:       nonNil(d.Reasons),
		Obligations:   nonNil(d.Obligations),
		Message:       d.Message,
		Errors:        d.Errors,
	}
	if p := d.Delegation; p != nil {
		r.Context.Delegations = p.Chain
		r.Context.DelegationStatus = p.Status
	}
	return r
}

// EvaluationsResponse is the answer to a batch with items: one Decision per
// answered item, in request order. It carries no top-level decision. Build
// it with NewEvaluationsResponse, which never leaves Evaluations nil.
type EvaluationsResponse struct {
	Evaluations []DecisionResponse `json:"evaluations"`
}

// NewEvaluationsResponse builds the batch answer for ds, in order; compact
// is as for NewDecisionResponse.
func NewEvaluationsResponse(ds []pdp.Decision, compact bool) EvaluationsResponse {
	out := make([]DecisionResponse, len(ds))
	for i := range ds {
		out[i] = NewDecisionResponse(ds[i], compact)
	}
	return EvaluationsResponse{Evaluations: out}
}
