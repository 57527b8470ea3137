package delegation

import (
	"slices"
	"time"
)

// Ref names a party or a resource by its SpiceDB object type (lowercase:
// "user", "organisation", "account") and id.
type Ref struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// String renders the reference as type:id, SpiceDB's form.
func (r Ref) String() string { return r.Type + ":" + r.ID }

// IsZero reports whether the reference is empty.
func (r Ref) IsZero() bool { return r.Type == "" && r.ID == "" }

// Basis is the legal ground of a delegation.
type Basis string

// Bases.
const (
	BasisPowerOfAttorney     Basis = "power_of_attorney"
	BasisStatutoryGuardian   Basis = "statutory_guardian"
	BasisLegalRepresentative Basis = "legal_representative"
	BasisSubDelegation       Basis = "sub_delegation"
)

func (b Basis) valid() bool {
	switch b {
	case BasisPowerOfAttorney, BasisStatutoryGuardian, BasisLegalRepresentative, BasisSubDelegation:
		return true
	}
	return false
}

// statutory reports whether the basis comes from a register by law and so,
// when the register is the source, needs no acceptance by the agent.
func (b Basis) statutory() bool {
	return b == BasisStatutoryGuardian || b == BasisLegalRepresentative
}

// Source says who vouches for a delegation.
type Source string

// Sources.
const (
	// SourceRegister: recorded by the operator of a public register (civil
	// register, commercial register): only the applications of
	// Config.RegisterApplications may record such delegations, and change
	// the statutory ones.
	SourceRegister Source = "register"
	// SourceSelfDeclared: declared by the principal (or, for a
	// sub-delegation, by the agent of the parent).
	SourceSelfDeclared Source = "self_declared"
)

func (s Source) valid() bool { return s == SourceRegister || s == SourceSelfDeclared }

// Status is the state of a delegation. The first five are stored; Expired
// and NotYetValid are derived from the window by Effective.
type Status string

// Statuses.
const (
	StatusOffered   Status = "offered"
	StatusActive    Status = "active"
	StatusSuspended Status = "suspended"
	StatusRevoked   Status = "revoked"
	StatusRenounced Status = "renounced"

	// StatusExpired: stored active, and now >= ValidUntil.
	StatusExpired Status = "expired"
	// StatusNotYetValid: stored active, and now < ValidFrom.
	StatusNotYetValid Status = "not_yet_valid"
)

func (s Status) stored() bool {
	switch s {
	case StatusOffered, StatusActive, StatusSuspended, StatusRevoked, StatusRenounced:
		return true
	}
	return false
}

// ended reports whether the status is final (revoked or renounced).
func (s Status) ended() bool { return s == StatusRevoked || s == StatusRenounced }

// Event types of the history.
const (
	EventOffered   = "offered"
	EventAccepted  = "accepted"
	EventActivated = "activated"
	EventSuspended = "suspended"
	EventResumed   = "resumed"
	EventRevoked   = "revoked"
	EventRenounced = "renounced"
)

// Constraints limit what a delegation allows beyond its scope.
type Constraints struct {
	// MaxAmount is the limit per payment, compared with the amount of the
	// request; nil means no limit.
	MaxAmount *float64 `json:"max_amount,omitempty"`
	// Currency, when set, is the only currency (ISO 4217) allowed.
	Currency string `json:"currency,omitempty"`
}

// Actor is who made a change: which application, acting for which subject.
type Actor struct {
	Application string `json:"application"`
	Subject     Ref    `json:"subject"`
}

// Event is one entry of a delegation's history.
type Event struct {
	Seq    int       `json:"seq"`
	Type   string    `json:"type"`
	At     time.Time `json:"at"`
	By     Actor     `json:"by"`
	Reason string    `json:"reason,omitempty"`
	// Status is the stored status after the event.
	Status Status `json:"status"`
	// Cascade marks an event the PDP made because an ancestor ended
	// (Revoke or Renounce of a parent, or Reconcile completing one): By
	// is who ended the ancestor, but By.Application took no part in this
	// record and does not become a reader of it (Service.Sees).
	Cascade bool `json:"cascade,omitempty"`
}

// Delegation is the record of one delegation: Agent may act for Principal
// within Scope, Resources, Constraints and [ValidFrom, ValidUntil).
type Delegation struct {
	ID        string `json:"id"`
	Principal Ref    `json:"principal"`
	Agent     Ref    `json:"agent"`
	Basis     Basis  `json:"basis"`
	Source    Source `json:"source"`
	// Scope lists action names; "*" means every action.
	Scope []string `json:"scope"`
	// Resources, when not empty, are the only resources covered; empty
	// means every resource of the principal.
	Resources   []Ref       `json:"resources,omitempty"`
	Constraints Constraints `json:"constraints,omitzero"`
	ValidFrom   time.Time   `json:"valid_from"`
	ValidUntil  time.Time   `json:"valid_until"`
	// Status is the stored status; see Effective for the one in force.
	Status Status `json:"status"`
	// MaxDepth is how many further levels the delegation may be
	// sub-delegated: 0 means not at all.
	MaxDepth int `json:"max_depth"`
	// Parent is the id of the parent of a sub-delegation.
	Parent     string     `json:"parent,omitempty"`
	CreatedBy  Actor      `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	// Version increments on every change (optimistic concurrency).
	Version int     `json:"version"`
	History []Event `json:"history"`
}

// Effective is the status in force at now: the stored status, except that
// an active delegation is StatusNotYetValid before ValidFrom and
// StatusExpired from ValidUntil on. It does not look at ancestors (see
// Service.Resolve).
func (d Delegation) Effective(now time.Time) Status {
	if d.Status != StatusActive {
		return d.Status
	}
	if now.Before(d.ValidFrom) {
		return StatusNotYetValid
	}
	if !now.Before(d.ValidUntil) {
		return StatusExpired
	}
	return StatusActive
}

// Clone returns a deep copy: no slice or pointer is shared with d.
func (d Delegation) Clone() Delegation {
	d.Scope = slices.Clone(d.Scope)
	d.Resources = slices.Clone(d.Resources)
	d.History = slices.Clone(d.History)
	if d.Constraints.MaxAmount != nil {
		v := *d.Constraints.MaxAmount
		d.Constraints.MaxAmount = &v
	}
	if d.AcceptedAt != nil {
		v := *d.AcceptedAt
		d.AcceptedAt = &v
	}
	return d
}

// covers reports whether the scope allows the action.
func (d Delegation) covers(action string) bool {
	return slices.Contains(d.Scope, "*") || slices.Contains(d.Scope, action)
}

// addEvent appends an event and sets the stored status.
func (d *Delegation) addEvent(typ string, at time.Time, by Actor, reason string, st Status) {
	d.appendEvent(Event{Type: typ, At: at, By: by, Reason: reason, Status: st})
}

// addCascade appends the revocation the end of an ancestor causes (marked
// Cascade: by's application does not become a reader).
func (d *Delegation) addCascade(at time.Time, by Actor, reason string) {
	d.appendEvent(Event{Type: EventRevoked, At: at, By: by, Reason: reason, Status: StatusRevoked, Cascade: true})
}

// appendEvent numbers e, appends it and sets the stored status.
func (d *Delegation) appendEvent(e Event) {
	e.Seq = 1
	if n := len(d.History); n > 0 {
		e.Seq = d.History[n-1].Seq + 1
	}
	d.History = append(d.History, e)
	d.Status = e.Status
}
