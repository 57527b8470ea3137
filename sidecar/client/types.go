package client

import (
	"encoding/json"
	"slices"
)

// Entity is an AuthZEN subject or resource.
type Entity struct {
	Type       string         `json:"type"`
	ID         string         `json:"id,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Action is an AuthZEN action.
type Action struct {
	Name       string         `json:"name"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Request is one Access Evaluation. Subject, Action and Resource are
// required (with type and id, and a name); Context is free-form, for
// example {"purpose": "account_servicing", "on_behalf_of": {"type": "user",
// "id": "alice"}, "amount": 250}.
type Request struct {
	Subject  Entity         `json:"subject"`
	Action   Action         `json:"action"`
	Resource Entity         `json:"resource"`
	Context  map[string]any `json:"context,omitempty"`
	// ConsistencyToken, if set, asks for a decision at least as fresh as
	// the token (see WithConsistencyToken); it overrides the context's.
	ConsistencyToken string `json:"-"`
}

// Evaluation is a batch item, or the batch defaults: any member may be
// left out (nil), and is then taken from the defaults.
type Evaluation struct {
	Subject  *Entity        `json:"subject,omitempty"`
	Action   *Action        `json:"action,omitempty"`
	Resource *Entity        `json:"resource,omitempty"`
	Context  map[string]any `json:"context,omitempty"`
}

// Semantic is the batch's options.evaluations_semantic.
type Semantic string

// The three AuthZEN batch semantics.
const (
	// ExecuteAll answers every item (the PDP's default).
	ExecuteAll Semantic = "execute_all"
	// DenyOnFirstDeny answers up to and including the first deny.
	DenyOnFirstDeny Semantic = "deny_on_first_deny"
	// PermitOnFirstPermit answers up to and including the first permit.
	PermitOnFirstPermit Semantic = "permit_on_first_permit"
)

// BatchRequest is an Access Evaluations request. Each item takes the
// members it leaves out from Defaults, whole (no merging of sub-fields).
type BatchRequest struct {
	Defaults    Evaluation
	Evaluations []Evaluation
	// Semantic is sent as options.evaluations_semantic; empty leaves the
	// PDP's default (ExecuteAll).
	Semantic         Semantic
	ConsistencyToken string
}

// wireBatch is a BatchRequest as sent.
type wireBatch struct {
	Evaluation
	Evaluations []Evaluation `json:"evaluations"`
	Options     *struct {
		Semantic Semantic `json:"evaluations_semantic"`
	} `json:"options,omitempty"`
}

// Decision is the PDP's answer to one evaluation.
type Decision struct {
	// Allowed is the decision: false means the action must not proceed.
	Allowed bool
	// DecisionID names the decision record in the PDP's trail.
	DecisionID string
	// PolicyVersion is the content hash of the policy version that decided.
	PolicyVersion string
	// Reasons are stable reason codes of a deny (for example
	// delegation_expired, consent_withdrawn); empty for an allow.
	Reasons []string
	// Policies are the ids of the determining policies.
	Policies []string
	// Obligations the application must fulfil (for example
	// step_up_authentication).
	Obligations []string
	// Message explains an engine-level deny in one line.
	Message string
	// Delegations and DelegationStatus describe acting on behalf of
	// someone: the delegation ids relied on, and what the records said.
	Delegations      []string
	DelegationStatus string
	// Error is the item-level error of a batch item the PDP could not
	// evaluate (AuthZEN context.error); nil otherwise.
	Error *ItemError
	// Context is the raw decision context, for members this client does
	// not model.
	Context json.RawMessage
}

// ItemError is an item-level error inside a batch answer.
type ItemError struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

// HasReason reports whether the decision carries reason code r.
func (d Decision) HasReason(r string) bool { return slices.Contains(d.Reasons, r) }

// HasObligation reports whether the decision carries obligation o.
func (d Decision) HasObligation(o string) bool { return slices.Contains(d.Obligations, o) }

// wireDecision is a Decision as received.
type wireDecision struct {
	Decision *bool           `json:"decision"`
	Context  json.RawMessage `json:"context"`
}

type wireContext struct {
	DecisionID       string     `json:"decision_id"`
	PolicyVersion    string     `json:"policy_version"`
	Policies         []string   `json:"policies"`
	Reasons          []string   `json:"reasons"`
	Obligations      []string   `json:"obligations"`
	Message          string     `json:"message"`
	Delegations      []string   `json:"delegations"`
	DelegationStatus string     `json:"delegation_status"`
	Error            *ItemError `json:"error"`
}

// SearchRequest is a Subject, Resource or Action Search. For subject
// search only Subject.Type is sent; for resource search only
// Resource.Type; action search sends no action.
type SearchRequest struct {
	Subject  Entity
	Action   Action
	Resource Entity
	Context  map[string]any
	// Page asks for one page; nil asks for everything.
	Page             *PageRequest
	ConsistencyToken string
}

// PageRequest asks for a page of search results: Token is the previous
// page's NextToken ("" for the first page) and Limit the most results
// wanted (0: the PDP's choice). The rest of the request must not change
// between pages.
type PageRequest struct {
	Token string `json:"token,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

// PageInfo describes the page a search answered. NextToken is "" on the
// last page.
type PageInfo struct {
	NextToken string `json:"next_token"`
	Count     int    `json:"count"`
	Total     int    `json:"total"`
}

// SearchResult is a search answer: the results (never nil) and, when the
// PDP paged them, the page.
type SearchResult[T any] struct {
	Results []T
	Page    *PageInfo
}

// ActionResult is one result of an action search.
type ActionResult struct {
	Name string `json:"name"`
}

type wireSearch struct {
	Subject  *Entity        `json:"subject,omitempty"`
	Action   *Action        `json:"action,omitempty"`
	Resource *Entity        `json:"resource,omitempty"`
	Context  map[string]any `json:"context,omitempty"`
	Page     *PageRequest   `json:"page,omitempty"`
}

type wireSearchResult[T any] struct {
	Page    *PageInfo `json:"page"`
	Results *[]T      `json:"results"`
}
