package pdp

// Entity is an AuthZEN subject or resource: a type, an id unique within that
// type, and optional properties. Properties become Cedar entity attributes,
// typed against the schema.
type Entity struct {
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Action is an AuthZEN action. Its properties reach Cedar as the context
// record "action_properties" (Cedar action entities carry no attributes).
type Action struct {
	Name       string         `json:"name"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Request is one access evaluation in the AuthZEN 1.0 information model, plus
// the authenticated calling application (never taken from the request body).
type Request struct {
	Subject  Entity         `json:"subject"`
	Action   Action         `json:"action"`
	Resource Entity         `json:"resource"`
	Context  map[string]any `json:"context,omitempty"`

	// Application is the id of the authenticated caller; empty when
	// authentication is off (the embedded default).
	Application string `json:"-"`
}
