package pdp

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"

	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/reason"
	"github.com/ciampdp/pdp/pdp/signals"
)

// Risk signals are enforced by the engine like consent: when the bundle
// has a signals registry (schema/signals.yaml), the active signals of the
// principal, of the person it acts for (context.on_behalf_of) and of the
// data subject override a permit as the registry says (deny, or allow
// only with an obligation), whatever the policies say. An action may
// declare a `signals` record in its context to let policies refine:
//
//	signals: { principal: Set<String>, data_subject: Set<String> }
//
// (the registry names of the active signals). A request tells the session
// it comes from in context.session: {"id": "…", "auth_time": <unix
// seconds>}; session-scoped rules (session-revoked) apply to sessions
// that began before the event.
const (
	ContextSignals = "signals"
	ContextSession = "session"
)

// Roles of an entity whose signals a decision read.
const (
	SignalRolePrincipal   = "principal"
	SignalRoleOnBehalfOf  = "on_behalf_of"
	SignalRoleDataSubject = "data_subject"
	SignalRoleRequest     = "request" // a velocity rule on a context value
)

// Reason codes and obligations of the risk guard.
const (
	ReasonRiskVelocity = reason.RiskVelocity
	// TransmitterPDP names the PDP itself as the source of a velocity
	// signal.
	TransmitterPDP = "pdp"
)

// SignalSource hands out the received signal events of an entity
// ("Type::\"id\""), oldest first: the signal ledger, in memory.
type SignalSource interface {
	For(entity string) []signals.Event
}

// staleSignals is a SignalSource that can tell it may be missing signals
// (a shared ledger it could not read lately): *signalledger.Ledger.
type staleSignals interface {
	Stale(now time.Time) error
}

// SignalFact is one signal a decision relied on, as the record keeps it:
// where it came from (transmitter, SET jti, event type and time, the
// subject as received), whose it is (role, entity), the registry rule and
// what it did to this request (effect, reason). Velocity signals name the
// rule, the counted value, the count and the window; failed step-up
// facts name the rule, the subject, the count and the window (and a
// report's outcome).
type SignalFact struct {
	Role        string             `json:"role"`
	Entity      string             `json:"entity"`
	Transmitter string             `json:"transmitter"`
	JTI         string             `json:"jti,omitempty"`
	Event       string             `json:"event"`
	EventTime   time.Time          `json:"event_time"`
	Subject     *signals.SubjectID `json:"subject,omitempty"`
	Session     string             `json:"session,omitempty"`
	Position    int64              `json:"position,omitempty"`
	Rule        string             `json:"rule"`
	Effect      string             `json:"effect,omitempty"`
	Reason      string             `json:"reason,omitempty"`
	Count       int                `json:"count,omitempty"`
	Window      string             `json:"window,omitempty"`
	// Outcome is the step-up outcome a report made (failed, succeeded).
	Outcome string `json:"outcome,omitempty"`
}

// signalJob is the risk part of a job: whose signals to read, and the
// session the request comes from.
type signalJob struct {
	entities []signalEntity
	session  signals.Session
	ip       map[string]string // context values velocity rules count by
	stepUp   *stepUpReport     // the step-up outcome a report action reports
}

type signalEntity struct {
	role, key string
}

// planSignals readies the signal check of a request; an error (a
// malformed context.session) denies it with invalid_input.
func planSignals(b *policy.Bundle, req Request, in builtInput) (*signalJob, error) {
	sj := &signalJob{entities: []signalEntity{{SignalRolePrincipal, entityKey(in.Principal)}}}
	if raw, ok := req.Context[ContextOnBehalfOf].(map[string]any); ok {
		typ, _ := raw["type"].(string)
		id, _ := raw["id"].(string)
		if et, ok := b.EntityType(typ); ok && id != "" {
			k := entityKey(types.NewEntityUID(et, types.String(id)))
			if k != sj.entities[0].key {
				sj.entities = append(sj.entities, signalEntity{SignalRoleOnBehalfOf, k})
			}
		}
	}
	s, err := sessionOf(req.Context[ContextSession])
	if err != nil {
		return nil, err
	}
	sj.session = s
	if sj.stepUp, err = planStepUp(b.Signals(), req); err != nil {
		return nil, err
	}
	if reg := b.Signals(); reg != nil && len(reg.Velocity) > 0 {
		for _, v := range reg.Velocity {
			if s, ok := req.Context[v.Key].(string); ok && s != "" {
				if sj.ip == nil {
					sj.ip = map[string]string{}
				}
				sj.ip[v.Key] = s
			}
		}
	}
	return sj, nil
}

func entityKey(uid types.EntityUID) string {
	return signals.EntityKey(string(uid.Type), string(uid.ID))
}

// sessionOf reads context.session: {"id": string, "auth_time": unix
// seconds}, both optional.
func sessionOf(raw any) (signals.Session, error) {
	var s signals.Session
	if raw == nil {
		return s, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return s, fmt.Errorf("context.session: want an object {\"id\":…,\"auth_time\":…}, got %s", jsonKind(raw))
	}
	if id, ok := m["id"]; ok && id != nil {
		if s.ID, ok = id.(string); !ok {
			return s, errors.New("context.session.id: want a string")
		}
	}
	if at, ok := m["auth_time"]; ok && at != nil {
		var f float64
		switch v := at.(type) {
		case json.Number:
			var err error
			if f, err = v.Float64(); err != nil {
				return s, fmt.Errorf("context.session.auth_time: %q is not a number", v.String())
			}
		case float64:
			f = v
		case int64:
			f = float64(v)
		case int:
			f = float64(v)
		default:
			return s, errors.New("context.session.auth_time: want unix seconds (a number)")
		}
		if f < 0 || f > 1e11 || math.IsNaN(f) {
			return s, errors.New("context.session.auth_time: out of range (unix seconds)")
		}
		s.AuthTime, s.Known = time.Unix(int64(f), 0).UTC(), true
	}
	return s, nil
}

// readSignals finds the active signals of a job's entities (and of its
// data subject, once the consent guard found one) and records them in the
// decision. A signal ledger that may be missing signals fails the job
// closed (facts_unavailable).
func (e *Engine) readSignals(b *policy.Bundle, j *job) {
	sj, reg := j.signals, b.Signals()
	if sj == nil || reg == nil {
		return
	}
	if st, ok := e.signals.(staleSignals); ok {
		if err := st.Stale(j.start); err != nil {
			j.deny(ReasonFactsUnavailable, fmt.Errorf("risk signals unavailable: %w", err))
			return
		}
	}
	ents := sj.entities
	if c := j.d.Consent; c != nil && c.Subject.ID != "" {
		if et, ok := b.EntityType(c.Subject.Type); ok {
			k := entityKey(types.NewEntityUID(et, types.String(c.Subject.ID)))
			if !slices.ContainsFunc(ents, func(x signalEntity) bool { return x.key == k }) {
				ents = append(ents, signalEntity{SignalRoleDataSubject, k})
			}
		}
	}
	action := string(j.in.Action.ID)
	if e.signals != nil {
		var found [3][]signals.Applied // principal, on_behalf_of, data subject
		n := 0
		for i, en := range ents {
			if i == len(found) {
				break
			}
			if evs := e.signals.For(en.key); len(evs) > 0 {
				found[i] = reg.Active(evs, action, sj.session, j.start)
				n += len(found[i])
			}
		}
		if n > 0 {
			j.d.Signals = make([]SignalFact, 0, n)
		}
		for i := range min(len(ents), len(found)) {
			en := ents[i]
			for _, a := range found[i] {
				j.d.Signals = append(j.d.Signals, SignalFact{
					Role: en.role, Entity: en.key, Transmitter: a.Event.Transmitter, JTI: a.Event.JTI,
					Event: a.Event.Type, EventTime: a.Event.Time, Subject: a.Event.Subject, Session: a.Event.Session,
					Position: a.Event.Position, Rule: a.Rule.Name, Effect: a.Effect, Reason: a.Rule.Reason,
				})
			}
		}
	}
	if sj.stepUp != nil {
		j.d.Signals = append(j.d.Signals, refuseReporters(sj.stepUp, j.d.Application)...)
	}
	if e.velocity != nil {
		var owner uint64
		if j.pending != nil {
			owner = (*j.pending).ownerID()
		}
		j.d.Signals = append(j.d.Signals, e.velocity.blocked(reg, sj.ip, owner, j.start)...)
		j.d.Signals = append(j.d.Signals, e.velocity.heldStepUps(reg, action, sj.entities[0].key, owner, j.start)...)
	}
}

// signalsRecord builds context.signals with the attributes the action
// declares: the rule names of the active signals by role (the person
// acted for counts as the data subject).
func signalsRecord(shape resolved.RecordType, facts []SignalFact) types.Record {
	m := make(types.RecordMap, len(shape))
	for k := range shape {
		var vals []types.Value
		for _, f := range facts {
			switch {
			case k == SignalRolePrincipal && f.Role == SignalRolePrincipal,
				k == SignalRoleDataSubject && (f.Role == SignalRoleDataSubject || f.Role == SignalRoleOnBehalfOf),
				k == SignalRoleRequest && f.Role == SignalRoleRequest:
				if v := types.String(f.Rule); !slices.Contains(vals, types.Value(v)) {
					vals = append(vals, v)
				}
			default:
				continue
			}
		}
		if k == SignalRolePrincipal || k == SignalRoleDataSubject || k == SignalRoleRequest {
			m[types.String(k)] = types.NewSet(vals...)
		}
	}
	return types.NewRecord(m)
}

// guardSignals applies the risk guard after Cedar: a signal whose effect
// is deny denies with its reason whatever the policies said; an
// obligation effect lets an allow through only with that obligation.
func guardSignals(d *Decision) {
	var denies, obligations []string
	for _, f := range d.Signals {
		switch f.Effect {
		case signals.EffectDeny:
			denies = append(denies, f.Reason)
		case signals.EffectStepUp, signals.EffectReauth:
			obligations = append(obligations, f.Effect)
		}
	}
	switch {
	case len(denies) > 0 && d.Allowed:
		d.Allowed = false
		d.Reasons = sortedUnique(denies)
		d.Obligations = []string{}
		if d.Message == "" {
			d.Message = signalMessage(d.Signals)
		}
	case len(denies) > 0:
		if len(d.Reasons) == 1 && (d.Reasons[0] == ReasonNotPermitted || d.Reasons[0] == ReasonNoRelationship) {
			d.Reasons = sortedUnique(denies)
		} else {
			d.Reasons = sortedUnique(append(d.Reasons, denies...))
		}
	case len(obligations) > 0 && d.Allowed:
		d.Obligations = sortedUnique(append(d.Obligations, obligations...))
	}
}

// signalMessage explains a deny by signals in one line.
func signalMessage(fs []SignalFact) string {
	for _, f := range fs {
		if f.Effect == signals.EffectDeny {
			return SignalWords(f)
		}
	}
	return ""
}

// SignalWords says what one signal fact means, for people (the deny's
// message and `pdp explain`).
func SignalWords(f SignalFact) string {
	what := f.Rule
	if f.Transmitter == TransmitterPDP && (f.Event == EventStepUpHold || f.Event == EventStepUpReport) {
		return stepUpWords(f)
	}
	if f.Transmitter == TransmitterPDP {
		return fmt.Sprintf("%s: %d denied decisions for distinct subjects from %s within %s (velocity rule %s)", f.Reason, f.Count, f.Entity, f.Window, f.Rule)
	}
	did := "denied"
	switch f.Effect {
	case signals.EffectStepUp, signals.EffectReauth:
		did = "allowed only with " + f.Effect
	case "":
		did = "visible to policies"
	}
	return fmt.Sprintf("%s (%s): %s reported %s %s at %s, SET jti %s (rule %s)",
		did, f.Reason, f.Transmitter, f.Entity, what, f.EventTime.UTC().Format(time.RFC3339), f.JTI, f.Rule)
}
