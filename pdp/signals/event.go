package signals

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// maxJTI is the longest jti a SET may carry.
const maxJTI = 256

// ErrInvalidEvent: an event lacks what every event of a verified SET has.
var ErrInvalidEvent = errors.New("invalid signal event")

// Validate checks what the verifier guarantees of every event of a
// verified SET as the ledger stores it: its transmitter, a jti (at most
// 256 characters), a type, its times (event, issue, receipt), a valid
// subject, and a subject for every event type this receiver knows but
// verification. The ledger checks each event before it records and
// stores it, and 'pdp repair' each event it would store from the trail.
func (e Event) Validate() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidEvent, fmt.Sprintf(format, args...))
	}
	switch {
	case e.Transmitter == "":
		return fail("no transmitter")
	case e.JTI == "" || len(e.JTI) > maxJTI:
		return fail("the jti is empty or longer than %d characters", maxJTI)
	case e.Type == "":
		return fail("no event type")
	case e.Time.IsZero():
		return fail("event %s has no event time", e.Type)
	case e.IssuedAt.IsZero():
		return fail("event %s has no issue time", e.Type)
	case e.ReceivedAt.IsZero():
		return fail("event %s has no receipt time", e.Type)
	}
	if e.Subject != nil {
		if err := e.Subject.Validate(); err != nil {
			return fail("event %s: subject: %v", e.Type, err)
		}
	} else if n := ShortName(e.Type); n != "" && n != "verification" {
		return fail("event %s names no subject", e.Type)
	}
	return nil
}

// Event is one event of a received SET as the ledger keeps it: who sent
// it, its jti, type and time, the subject as received and the entity it
// was mapped to ("" when no rule of the registry mapped it: stored, and
// ignored).
type Event struct {
	Position    int64           `json:"position"`
	Transmitter string          `json:"transmitter"`
	JTI         string          `json:"jti"`
	Type        string          `json:"type"`
	Time        time.Time       `json:"time"`
	IssuedAt    time.Time       `json:"issued_at"`
	ReceivedAt  time.Time       `json:"received_at"`
	Subject     *SubjectID      `json:"subject,omitempty"`
	Entity      string          `json:"entity,omitempty"`
	Session     string          `json:"session,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`
}

// Session is what a request says of the session it comes from
// (context.session): its id and when the user authenticated.
type Session struct {
	ID       string
	AuthTime time.Time
	Known    bool // the request carries context.session.auth_time
}

// Applied is an event that holds for a request: the rule it matched and
// what it does to the action ("" when it only informs policies).
type Applied struct {
	Event  *Event // into the events Active was given
	Rule   *Rule  // the registry's
	Effect string
}

// Active returns the events of one entity that hold at now for a request
// on action from session: those with a rule, matching it, not expired,
// not lifted by a later event, and for session rules only for sessions
// older than the event (or the very session it names).
func (r *Registry) Active(events []Event, action string, sess Session, now time.Time) []Applied {
	if r == nil {
		return nil
	}
	var out []Applied
	for i := range events {
		e := &events[i]
		rule, ok := r.Rules[e.Type]
		if !ok || !matches(rule.Match, e.Payload) {
			continue
		}
		if rule.Duration > 0 && !now.Before(e.Time.Add(rule.Duration)) {
			continue
		}
		if lifted(rule, events, i) {
			continue
		}
		if rule.Scope == ScopeSession {
			if !sess.Known && (e.Session == "" || sess.ID == "") {
				continue
			}
			switch {
			case e.Session != "" && sess.ID != "" && e.Session == sess.ID:
			case e.Session != "" && sess.ID != "" && e.Session != sess.ID:
				continue
			case !sess.Known || !sess.AuthTime.Before(e.Time):
				continue
			}
		}
		if out == nil {
			out = make([]Applied, 0, len(events)-i)
		}
		out = append(out, Applied{Event: e, Rule: rule, Effect: rule.Effect(action)})
	}
	return out
}

// lifted reports whether a later event of the same entity ends events[i].
func lifted(rule *Rule, events []Event, i int) bool {
	if len(rule.LiftedBy) == 0 {
		return false
	}
	e := &events[i]
	for j := range events {
		f := &events[j]
		if j == i || !slices.Contains(rule.LiftedBy, f.Type) {
			continue
		}
		if f.Time.After(e.Time) || (f.Time.Equal(e.Time) && f.Position > e.Position) {
			return true
		}
	}
	return false
}

// matches reports whether the payload's members equal the wanted strings.
func matches(want map[string]string, payload json.RawMessage) bool {
	if len(want) == 0 {
		return true
	}
	var p map[string]any
	if json.Unmarshal(payload, &p) != nil {
		return false
	}
	for k, v := range want {
		if s, _ := p[k].(string); s != v {
			return false
		}
	}
	return true
}
