package policy

import "time"

// Version identifies a policy bundle: the SHA-256 over the canonical content
// of every policy, schema and entities file, plus the Git commit the folder
// was checked out at, when it lives in a Git work tree.
type Version struct {
	Hash   string `json:"hash"`
	Commit string `json:"commit,omitempty"`
}

// Status is what GET /v1/policies shows: the active version and the outcome
// of the most recent reload attempts.
type Status struct {
	Active      Version   `json:"active"`
	LoadedAt    time.Time `json:"loaded_at"`
	Source      string    `json:"source"`
	Policies    int       `json:"policies"`
	LastAttempt time.Time `json:"last_attempt"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Reloads     uint64    `json:"reloads"`
	Failures    uint64    `json:"failures"`
}
