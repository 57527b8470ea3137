package signalout

import (
	"strings"
	"time"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
)

// Event names of the outgoing signals. Their URIs are the transmitter's
// issuer (without its trailing slash) followed by "/events/" and the name
// (EventURI): https://pdp.northbank.example/events/delegation-revoked.
const (
	DelegationRevoked   = "delegation-revoked"
	DelegationSuspended = "delegation-suspended"
	DelegationRenounced = "delegation-renounced"
	ConsentWithdrawn    = "consent-withdrawn"
)

// EventNames are every outgoing event name, in a stable order.
var EventNames = []string{DelegationRevoked, DelegationSuspended, DelegationRenounced, ConsentWithdrawn}

// EventURI is the event type URI of name for a transmitter's issuer.
func EventURI(issuer, name string) string {
	return strings.TrimSuffix(issuer, "/") + "/events/" + name
}

// delegationEvents maps a delegation change's action to its event name.
var delegationEvents = map[string]string{
	"delegation.revoke":   DelegationRevoked,
	"delegation.suspend":  DelegationSuspended,
	"delegation.renounce": DelegationRenounced,
}

// signal is one outgoing event before it is addressed to a receiver.
type signal struct {
	name    string
	subject entityRef // the sub_id: whose sessions the receiver should review
	payload map[string]any
	// delegation is the record after a delegation change, consent the
	// event of a consent change (one of them is set): who may read it
	// decides who gets the signal.
	delegation *delegation.Delegation
	consent    *consent.Event
}

// entityRef is a PDP entity (type and id).
type entityRef struct{ Type, ID string }

// fromDelegation is the signal of a delegation change, or false when the
// change is not one that is signalled. The subject is the agent: the
// person who lost the power to act for the principal.
func fromDelegation(c delegation.Change) (signal, bool) {
	name, ok := delegationEvents[c.Action]
	if !ok {
		return signal{}, false
	}
	d := c.Delegation
	p := map[string]any{
		"delegation_id":     d.ID,
		"principal":         map[string]string{"type": d.Principal.Type, "id": d.Principal.ID},
		"agent":             map[string]string{"type": d.Agent.Type, "id": d.Agent.ID},
		"initiating_entity": initiator(c.By.Subject.Type, c.By.Subject.ID, d),
		"event_timestamp":   eventTime(d),
	}
	if c.Reason != "" {
		p["reason_admin"] = map[string]string{"en": c.Reason}
	}
	return signal{name: name, subject: entityRef{d.Agent.Type, d.Agent.ID}, payload: p, delegation: &d}, true
}

// initiator says who made a delegation change: the principal, the agent,
// or someone else (a register, a parent's agent).
func initiator(typ, id string, d delegation.Delegation) string {
	switch {
	case typ == d.Principal.Type && id == d.Principal.ID:
		return "principal"
	case typ == d.Agent.Type && id == d.Agent.ID:
		return "agent"
	}
	return "admin"
}

// eventTime is the time of a delegation's latest history event (now when
// it has none).
func eventTime(d delegation.Delegation) int64 {
	if n := len(d.History); n > 0 && !d.History[n-1].At.IsZero() {
		return d.History[n-1].At.Unix()
	}
	return time.Now().Unix()
}

// fromConsent are the signals of a consent change: one per withdrawn or
// revoked grant, about the data subject.
func fromConsent(c consent.Change) []signal {
	var out []signal
	for _, e := range c.Events {
		if e.Type != consent.EventWithdrawn && e.Type != consent.EventRevoked {
			continue
		}
		p := map[string]any{
			"consent_event_id":  e.ID,
			"purpose":           e.Purpose,
			"purpose_version":   e.PurposeVersion,
			"initiating_entity": "subject",
			"event_timestamp":   e.RecordedAt.Unix(),
		}
		if e.Type == consent.EventRevoked {
			p["initiating_entity"] = "admin"
		}
		if e.GrantID != "" {
			p["grant_id"] = e.GrantID
		}
		if len(e.Applications) > 0 {
			p["applications"] = e.Applications
		}
		if e.Reason != "" {
			p["reason_admin"] = map[string]string{"en": e.Reason}
		}
		out = append(out, signal{name: ConsentWithdrawn, subject: entityRef{e.Subject.Type, e.Subject.ID}, payload: p, consent: &e})
	}
	return out
}
