package authzen

import (
	"fmt"

	"github.com/ciampdp/pdp/pdp"
)

// Semantic is the value of options.evaluations_semantic in a batch request.
type Semantic string

// The three batch semantics of AuthZEN 1.0.
const (
	// ExecuteAll evaluates every item and answers all of them (the default).
	ExecuteAll Semantic = "execute_all"
	// DenyOnFirstDeny answers up to and including the first deny, like &&.
	DenyOnFirstDeny Semantic = "deny_on_first_deny"
	// PermitOnFirstPermit answers up to and including the first permit, like ||.
	PermitOnFirstPermit Semantic = "permit_on_first_permit"
)

// Valid reports whether s is one of the three defined semantics.
func (s Semantic) Valid() bool {
	switch s {
	case ExecuteAll, DenyOnFirstDeny, PermitOnFirstPermit:
		return true
	}
	return false
}

// Batch is a decoded Access Evaluations (POST /access/v1/evaluations) body.
type Batch struct {
	// Single is true when the body had no evaluations (absent, null or []):
	// the endpoint then answers exactly like a single Access Evaluation, and
	// Requests holds the one, complete, top-level request.
	Single bool
	// Semantic is the requested short-circuit semantic, ExecuteAll if none.
	Semantic Semantic
	// Requests holds one request per item, in order, with the top-level
	// defaults applied. An item that is incomplete after defaults is kept
	// with its missing parts zero-valued; the engine denies it with reason
	// invalid_input. Requests may share property and context maps with each
	// other: treat them as read-only.
	Requests []pdp.Request
}

// wireBatch is a batch body as sent: the top-level defaults, the items and
// the options. A nil item means the item was JSON null.
type wireBatch struct {
	wireEvaluation
	Evaluations []*wireEvaluation `json:"evaluations"`
	Options     *wireOptions      `json:"options"`
}

type wireOptions struct {
	Semantic Semantic `json:"evaluations_semantic"`
}

// DecodeEvaluations decodes the body of an Access Evaluations request.
//
// Top-level subject, action, resource and context are defaults for every
// item; a member present in an item replaces the whole default (there is no
// merging of sub-fields). A problem with the payload as a whole is a
// *RequestError: malformed JSON, evaluations that is not an array, an item
// that is not an object, a member of the wrong JSON type (an entity that is
// not an object, an action name that is not a string), options that are not
// an object, or an unknown evaluations_semantic. An item that is merely
// incomplete after defaults is not an error (see Batch.Requests).
//
// With no evaluations the top-level request must be complete and valid, as
// for DecodeEvaluation. An empty evaluations_semantic means ExecuteAll.
func DecodeEvaluations(body []byte) (Batch, error) {
	var w wireBatch
	if err := decodeObject(body, &w); err != nil {
		return Batch{}, err
	}
	b := Batch{Semantic: ExecuteAll}
	if w.Options != nil && w.Options.Semantic != "" {
		if !w.Options.Semantic.Valid() {
			return Batch{}, badRequest(fmt.Sprintf("options.evaluations_semantic must be one of %q, %q or %q",
				ExecuteAll, DenyOnFirstDeny, PermitOnFirstPermit), nil)
		}
		b.Semantic = w.Options.Semantic
	}
	if len(w.Evaluations) == 0 {
		if err := w.validate(); err != nil {
			return Batch{}, err
		}
		b.Single = true
		b.Requests = []pdp.Request{w.request()}
		return b, nil
	}
	b.Requests = make([]pdp.Request, len(w.Evaluations))
	for i, item := range w.Evaluations {
		if item == nil {
			return Batch{}, badRequest(fmt.Sprintf("evaluations[%d] must be an object, not null", i), nil)
		}
		merged := w.wireEvaluation
		if item.Subject != nil {
			merged.Subject = item.Subject
		}
		if item.Action != nil {
			merged.Action = item.Action
		}
		if item.Resource != nil {
			merged.Resource = item.Resource
		}
		if item.Context != nil {
			merged.Context = item.Context
		}
		if _, err := pdp.StepUpOutcome(merged.Context); err != nil {
			return Batch{}, badRequest(fmt.Sprintf("evaluations[%d]: %v", i, err), err)
		}
		b.Requests[i] = merged.request()
	}
	return b, nil
}

// ApplySemantic truncates the decisions of a batch, given in request order,
// as semantic s requires: DenyOnFirstDeny keeps everything up to and
// including the first deny, PermitOnFirstPermit everything up to and
// including the first permit. ExecuteAll (or any other value) keeps all. The
// result shares ds's backing array.
func ApplySemantic(s Semantic, ds []pdp.Decision) []pdp.Decision {
	var stopAt bool
	switch s {
	case DenyOnFirstDeny:
		stopAt = false
	case PermitOnFirstPermit:
		stopAt = true
	default:
		return ds
	}
	for i := range ds {
		if ds[i].Allowed == stopAt {
			return ds[:i+1]
		}
	}
	return ds
}
