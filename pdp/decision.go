package pdp

import (
	"encoding/json"
	"sort"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/reason"
)

// Reason codes are a stable contract with applications: they switch on them.
// Every code is defined, with its meaning, in package reason (the
// catalogue); these are the engine's names for them.
const (
	// ReasonNotPermitted: no policy permitted the request (Cedar's default deny).
	ReasonNotPermitted = reason.NotPermitted
	// ReasonForbidden: a forbid policy matched and carried no @reason annotation.
	ReasonForbidden = reason.Forbidden
	// ReasonUnknownAction: the action is not declared in the Cedar schema.
	ReasonUnknownAction = reason.UnknownAction
	// ReasonUnknownEntityType: the subject or resource type is not in the schema.
	ReasonUnknownEntityType = reason.UnknownEntityType
	// ReasonEntityTypeMismatch: the subject or resource type is declared,
	// but the action does not apply to it (the schema's appliesTo).
	ReasonEntityTypeMismatch = reason.EntityTypeMismatch
	// ReasonInvalidInput: a property or context value does not fit the schema,
	// or a batch item lacks a required entity after defaults were applied.
	ReasonInvalidInput = reason.InvalidInput
)

// EvalError is an error Cedar met while evaluating one policy. Cedar skips a
// policy that errors; the error is kept so that authors and auditors see it.
type EvalError struct {
	PolicyID string `json:"policy"`
	Message  string `json:"message"`
}

// Input is the complete Cedar input a decision evaluated: enough to
// re-evaluate it later without any live store. Entities holds every entity
// the evaluation read: the principal, the resource, then the others in the
// order the evaluation first read them (a JSON array of Cedar entities, as
// an EntityMap reads it back). It marshals to Cedar's JSON formats.
type Input struct {
	Principal types.EntityUID `json:"principal"`
	Action    types.EntityUID `json:"action"`
	Resource  types.EntityUID `json:"resource"`
	Context   types.Record    `json:"context"`
	Entities  []types.Entity  `json:"entities"`
}

// CedarRequest is the Cedar request the input describes.
func (in Input) CedarRequest() cedar.Request {
	return cedar.Request{Principal: in.Principal, Action: in.Action, Resource: in.Resource, Context: in.Context}
}

// Decision is the answer to one Request.
type Decision struct {
	ID          string    `json:"decision_id"`
	Time        time.Time `json:"time"`
	Allowed     bool      `json:"decision"`
	Application string    `json:"application,omitempty"`
	// Policies are the ids of the determining policies: the forbids that
	// matched when denied by a forbid, else the permits that matched. Sorted.
	Policies []string `json:"policies"`
	// Reasons are stable reason codes (empty for an allow). Sorted, unique.
	Reasons []string `json:"reasons"`
	// Obligations come from @obligation annotations of the determining
	// policies (for example "step_up_authentication"). Sorted, unique.
	Obligations   []string       `json:"obligations"`
	Errors        []EvalError    `json:"errors,omitempty"`
	PolicyVersion policy.Version `json:"policy_version"`
	// Facts are the relationship facts the decision read, in plan order,
	// and FactsRevision the store revision (ZedToken) they were read at.
	Facts         []Fact `json:"facts,omitempty"`
	FactsRevision string `json:"facts_revision,omitempty"`
	// Delegation is what the delegation records said when the request
	// acted on behalf of someone: status and the chain of delegation ids.
	Delegation *DelegationProof `json:"delegation,omitempty"`
	// Consent is what the consent guard relied on: the purpose, the legal
	// basis, and for consent the grant and the ledger position it saw.
	Consent *ConsentFact `json:"consent,omitempty"`
	// Dormancy is what the dormancy guard found: the rule, the last
	// activity as of the decision, the revalidation that ended a
	// dormancy, and the effect it had (replay applies it again).
	Dormancy []dormancy.Finding `json:"dormancy,omitempty"`
	// Signals are the risk signals the decision relied on: each received
	// signal of the principal, the person acted for and the data subject
	// that was active, and each velocity rule that blocked the request.
	Signals  []SignalFact  `json:"signals,omitempty"`
	Input    Input         `json:"input"`
	Duration time.Duration `json:"duration_ns"`
	// Message explains an engine-level deny (unknown type, invalid input) in
	// one line; empty otherwise.
	Message string `json:"message,omitempty"`
}

// ReasonPolicyError accompanies not_permitted when a policy failed to
// evaluate (Cedar skips such a policy); the errors are in Decision.Errors.
const ReasonPolicyError = reason.PolicyError

func sortErrors(es []EvalError) {
	sort.Slice(es, func(i, j int) bool {
		if es[i].PolicyID != es[j].PolicyID {
			return es[i].PolicyID < es[j].PolicyID
		}
		return es[i].Message < es[j].Message
	})
}

// zeroUID is how a zero EntityUID encodes: an input the engine never built
// (a request denied before, for an unknown type, say) records it so.
const zeroUID = `{"__entity":{"type":"","id":""}}`

// UnmarshalJSON reads an Input as MarshalJSON wrote it, zero entity
// references included (Cedar's decoder refuses an empty type).
func (in *Input) UnmarshalJSON(b []byte) error {
	var aux struct {
		Principal json.RawMessage `json:"principal"`
		Action    json.RawMessage `json:"action"`
		Resource  json.RawMessage `json:"resource"`
		Context   types.Record    `json:"context"`
		Entities  []types.Entity  `json:"entities"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*in = Input{Context: aux.Context, Entities: aux.Entities}
	for _, f := range []struct {
		raw json.RawMessage
		dst *types.EntityUID
	}{{aux.Principal, &in.Principal}, {aux.Action, &in.Action}, {aux.Resource, &in.Resource}} {
		if len(f.raw) == 0 || string(f.raw) == "null" || string(f.raw) == zeroUID {
			continue
		}
		if err := json.Unmarshal(f.raw, f.dst); err != nil {
			return err
		}
	}
	return nil
}
