package authzen

import "strings"

// Default paths of the AuthZEN 1.0 HTTPS binding, relative to the PDP base
// URL (the policy_decision_point identifier).
const (
	EvaluationPath  = "/access/v1/evaluation"
	EvaluationsPath = "/access/v1/evaluations"
	// WellKnownPath is where the metadata document is served, inserted
	// between the host and the path of the PDP identifier.
	WellKnownPath = "/.well-known/authzen-configuration"
)

// Metadata is the PDP metadata document served at WellKnownPath.
type Metadata struct {
	// PolicyDecisionPoint is the PDP identifier: the base URL PEPs use. A
	// PEP must ignore the document if this differs from the identifier it
	// built the well-known URL from.
	PolicyDecisionPoint       string `json:"policy_decision_point"`
	AccessEvaluationEndpoint  string `json:"access_evaluation_endpoint"`
	AccessEvaluationsEndpoint string `json:"access_evaluations_endpoint,omitempty"`
	SearchSubjectEndpoint     string `json:"search_subject_endpoint,omitempty"`
	SearchResourceEndpoint    string `json:"search_resource_endpoint,omitempty"`
	SearchActionEndpoint      string `json:"search_action_endpoint,omitempty"`
	// Capabilities are registered AuthZEN capability URNs; omitted if none.
	Capabilities []string `json:"capabilities,omitempty"`
}

// NewMetadata describes a PDP whose identifier (base URL, without query or
// fragment) is pdpURL. A trailing slash on pdpURL is dropped.
func NewMetadata(pdpURL string, capabilities ...string) Metadata {
	base := strings.TrimRight(pdpURL, "/")
	return Metadata{
		PolicyDecisionPoint:       base,
		AccessEvaluationEndpoint:  base + EvaluationPath,
		AccessEvaluationsEndpoint: base + EvaluationsPath,
		Capabilities:              capabilities,
	}
}

// WithSearch adds the three search endpoints, for a PDP that serves them.
func (m Metadata) WithSearch() Metadata {
	m.SearchSubjectEndpoint = m.PolicyDecisionPoint + SearchSubjectPath
	m.SearchResourceEndpoint = m.PolicyDecisionPoint + SearchResourcePath
	m.SearchActionEndpoint = m.PolicyDecisionPoint + SearchActionPath
	return m
}
