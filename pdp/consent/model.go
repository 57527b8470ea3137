// Package consent owns consent as a first-class record: an append-only
// ledger of consent events with monotonically increasing positions, the
// current state indexed for decisions, the rules that say whether a
// decision may rely on a grant under the purposes registry (package
// purposes), and signed consent receipts.
package consent

import "time"

// Ref names a person (or another party) as the relationship store does:
// {"type":"user","id":"alice"}.
type Ref struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

func (r Ref) String() string { return r.Type + ":" + r.ID }

// EventType is the kind of a ledger event.
type EventType string

const (
	// EventGiven records a grant (a new GrantID).
	EventGiven EventType = "given"
	// EventRefused records a refusal; in an opt-out jurisdiction it is the
	// opt-out.
	EventRefused EventType = "refused"
	// EventWithdrawn: the subject (or their representative) withdrew a
	// grant.
	EventWithdrawn EventType = "withdrawn"
	// EventRevoked: someone else (the controller, a court) ended a grant.
	EventRevoked EventType = "revoked"
	// EventRenewed: a grant confirmed again (new expiry and/or notice).
	EventRenewed EventType = "renewed"
)

// Notice is the privacy notice a choice was made on.
type Notice struct {
	URI      string `json:"uri"`
	Version  int    `json:"version"`
	Hash     string `json:"hash,omitempty"` // e.g. "sha256:…" of the notice text
	Language string `json:"language,omitempty"`
}

// Event is one entry of the ledger. Events are never updated or deleted;
// the state at any time is recomputed from them.
type Event struct {
	// Position is the event's place in the ledger, assigned on append:
	// strictly increasing, never reused.
	Position int64     `json:"position"`
	ID       string    `json:"id"`
	Type     EventType `json:"type"`
	// GrantID is the grant a given event creates, or the grant a
	// withdrawn/revoked/renewed event is about ("" for a withdrawal of
	// every grant of the purpose).
	GrantID string `json:"grant_id,omitempty"`
	// Subject is the data subject.
	Subject Ref `json:"subject"`
	// Actor is who acted: the subject, or a representative acting under
	// Delegation (the id of a delegation record).
	Actor      Ref    `json:"actor"`
	Delegation string `json:"delegation,omitempty"`
	// Application is the application that recorded the event (from its
	// credential).
	Application    string   `json:"application"`
	Purpose        string   `json:"purpose"`
	PurposeVersion int      `json:"purpose_version"`
	Applications   []string `json:"applications,omitempty"` // the applications a grant covers
	Jurisdiction   string   `json:"jurisdiction"`
	Notice         Notice   `json:"notice,omitzero"`
	Channel        string   `json:"channel,omitempty"`  // web, app, branch, phone, paper
	Evidence       string   `json:"evidence,omitempty"` // reference to the collection evidence
	Reason         string   `json:"reason,omitempty"`
	// At is when the choice was made; RecordedAt when the ledger stored it.
	At         time.Time  `json:"at"`
	RecordedAt time.Time  `json:"recorded_at"`
	Expires    *time.Time `json:"expires,omitempty"`
}
