package dormancy

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Kinds of revalidation.
const (
	// KindIdentity: the identity proved itself again (to the identity
	// provider, or to the bank's staff): its dormancy ends.
	KindIdentity = "identity"
	// KindDelegation: the principal re-confirmed a delegation: its
	// dormancy ends.
	KindDelegation = "delegation"
)

// Ref names an identity ("type:id"), as the consent ledger's activity
// does (the same fields: one converts to the other).
type Ref struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

func (r Ref) String() string { return r.Type + ":" + r.ID }

// Actor is who made a revalidation: the calling application and the
// person it names (the principal re-confirming, staff, or the identity
// provider for a signal).
type Actor struct {
	Application string `json:"application"`
	Subject     Ref    `json:"subject"`
}

// Revalidation is one revalidation: an identity's (Subject) or a
// delegation's re-confirmation by its principal (Delegation, Subject the
// principal).
type Revalidation struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Subject    Ref       `json:"subject"`
	Delegation string    `json:"delegation,omitempty"`
	At         time.Time `json:"at"`
	By         Actor     `json:"by"`
	// Source is "admin" (the API or CLI) or, for a revalidation a risk
	// signal made, SignalSource of its SET and event type.
	Source string `json:"source"`
	Reason string `json:"reason,omitempty"`
	// Position is the store's order (assigned on append).
	Position int64 `json:"position"`
}

// SignalSource is the source of the revalidation a received signal
// makes: "signal:<transmitter> <event type> <jti>". It names the SET (the
// audit record traces to it) and makes the revalidation once per SET
// event and subject.
func SignalSource(transmitter, eventType, jti string) string {
	return "signal:" + transmitter + " " + eventType + " " + jti
}

// SignalRevalidation is a revalidation an event of a received SET implies
// (the active bundle's dormancy rules name its type, or its CAEP
// assurance level): the event's type and the identity whose dormancy it
// ends. The trail's record of the SET names them, so that the start-up
// check demands, and 'pdp repair' makes, the revalidation a crash lost.
type SignalRevalidation struct {
	Type    string `json:"type"`
	Subject Ref    `json:"subject"`
}

// Key is what the revalidation ends the dormancy of: "user:heidi" or
// "delegation:<id>".
func (r Revalidation) Key() string {
	if r.Kind == KindDelegation {
		return DelegationKey(r.Delegation)
	}
	return r.Subject.String()
}

// DelegationKey is the key of a delegation's revalidations.
func DelegationKey(id string) string { return "delegation:" + id }

// DecodeRevalidation reads one stored revalidation and checks it names
// what it revalidates.
func DecodeRevalidation(b []byte) (Revalidation, error) {
	var r Revalidation
	if err := json.Unmarshal(b, &r); err != nil {
		return Revalidation{}, err
	}
	switch {
	case r.ID == "":
		return Revalidation{}, errors.New("revalidation without id")
	case r.Kind != KindIdentity && r.Kind != KindDelegation:
		return Revalidation{}, fmt.Errorf("revalidation %s: kind %q", r.ID, r.Kind)
	case r.Kind == KindDelegation && r.Delegation == "":
		return Revalidation{}, fmt.Errorf("revalidation %s: no delegation", r.ID)
	case r.Kind == KindIdentity && (r.Subject.Type == "" || r.Subject.ID == ""):
		return Revalidation{}, fmt.Errorf("revalidation %s: no subject", r.ID)
	case r.At.IsZero():
		return Revalidation{}, fmt.Errorf("revalidation %s: no time", r.ID)
	}
	return r, nil
}

// Roles of activity, as refs of the activity record: the identity as
// principal is its own ref ("user:heidi"); as data subject, and a
// delegation's use by its agent, get refs of their own, whose types no
// schema can name ('#' is not allowed in a Cedar type).
const (
	subjectSuffix = "#subject"
	agentType     = "delegation#agent"
)

// SubjectRef is the activity ref of r as a data subject.
func SubjectRef(r Ref) Ref { return Ref{Type: r.Type + subjectSuffix, ID: r.ID} }

// AgentRef is the activity ref of a delegation used by its agent.
func AgentRef(id string) Ref { return Ref{Type: agentType, ID: id} }

// IsRole reports whether an activity ref is a role's (not an identity's
// own activity as principal).
func IsRole(r Ref) bool {
	for _, c := range r.Type {
		if c == '#' {
			return true
		}
	}
	return false
}
