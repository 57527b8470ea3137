package pdp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ciampdp/pdp/pdp/reason"
	"github.com/ciampdp/pdp/pdp/signals"
)

// Failed step-ups, then a payment. An application reports the outcome of
// each step-up authentication it ran as an evaluation of the registry
// rule's report action (Northbank: complete_step_up) for the subject who
// tried, with
//
//	context.step_up: {"outcome": "failed" | "succeeded"}
//
// A report counts only when the calling application is among the rule's
// reporters and the decision allows it. count failures within window hold
// the subject: the rule's actions answer allow only with
// step_up_authentication (or deny) for block; a successful step-up lifts
// it at once.
const (
	ContextStepUp   = "step_up"
	StepUpFailed    = "failed"
	StepUpSucceeded = "succeeded"
	// Events of the PDP's own step-up facts.
	EventStepUpHold   = "step_up_failures"
	EventStepUpReport = "step_up_report"
)

// Reason codes of the failed step-up rules.
const (
	ReasonStepUpFailed     = reason.StepUpFailed
	ReasonReportNotAllowed = reason.ReportNotAllowed
)

// ErrStepUp: context.step_up is malformed.
var ErrStepUp = errors.New(`context.step_up: want {"outcome": "failed" | "succeeded"}`)

// StepUpOutcome reads context.step_up: "" when absent, else the outcome
// (StepUpFailed or StepUpSucceeded); any other shape is an error wrapping
// ErrStepUp that says what is wrong.
func StepUpOutcome(ctx map[string]any) (string, error) {
	raw, ok := ctx[ContextStepUp]
	if !ok {
		return "", nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return "", fmt.Errorf("%w, got %s", ErrStepUp, jsonKind(raw))
	}
	for k := range m {
		if k != "outcome" {
			return "", fmt.Errorf("%w: unknown member %q", ErrStepUp, k)
		}
	}
	switch o, _ := m["outcome"].(string); o {
	case StepUpFailed, StepUpSucceeded:
		return o, nil
	case "":
		return "", fmt.Errorf("%w: outcome is required (a string)", ErrStepUp)
	default:
		return "", fmt.Errorf("%w: outcome %q is neither", ErrStepUp, o)
	}
}

// ChangePublisher tells the sidecars that answers they cached may no
// longer hold (the change feed): *changefeed.Changes.
type ChangePublisher interface {
	Publish(ctx context.Context, reason string) (uint64, error)
}

type stepUpKey struct{ rule, subject string }

// stepUpRule is the sliding window of a failed step-up rule.
func stepUpRule(r *signals.StepUpRule) windowRule {
	return windowRule{window: r.Window, block: r.Block, threshold: r.Count}
}

// reportStepUp reserves, in p for its decision i, a reported outcome of
// subject's step-up for rule r: a failure is added to the window (the
// count-th holds the subject for r.Block); a success forgets the failures
// and lifts a hold. It returns the failures in the window after it (the
// count that began a hold), as the decisions of p see them.
func (v *Velocity) reportStepUp(p *Pending, i int, r *signals.StepUpRule, subject, outcome string, at time.Time) (count int) {
	k := stepUpKey{r.Name, subject}
	reset := outcome == StepUpSucceeded
	count, id, begins := v.subjects.reserveBegins(k, windowChange{owner: p.owner, rule: stepUpRule(r), ev: windowEvent{at: at}, reset: reset}, v.maxKeys())
	p.reserve(pendingItem{decision: i, kind: pendingStepUp, id: id, subject: k, reset: reset, blocking: begins})
	return count
}

// heldStepUps returns a fact for each failed step-up rule that holds
// subject (an entity key) back from action at at, as the decisions of
// owner see the counts.
func (v *Velocity) heldStepUps(reg *signals.Registry, action, subject string, owner uint64, at time.Time) []SignalFact {
	if reg == nil || len(reg.StepUps) == 0 {
		return nil
	}
	var out []SignalFact
	for i := range reg.StepUps {
		r := &reg.StepUps[i]
		if !r.Applies(action) {
			continue
		}
		s, ok := v.subjects.blocked(stepUpKey{r.Name, subject}, owner, at)
		if !ok {
			continue
		}
		out = append(out, SignalFact{
			Role: SignalRolePrincipal, Entity: subject, Transmitter: TransmitterPDP, Event: EventStepUpHold,
			EventTime: s.blockedAt, Rule: r.Name, Effect: r.Effect, Reason: r.Reason,
			Count: s.count, Window: r.Window.String(),
		})
	}
	return out
}

// stepUpReport is the report a request makes, once planned: its rules
// and outcome.
type stepUpReport struct {
	rules   []*signals.StepUpRule
	outcome string
}

// planStepUp reads the step-up outcome a request reports: only requests
// of a rule's report action report one (and must carry a valid one).
func planStepUp(reg *signals.Registry, req Request) (*stepUpReport, error) {
	rules := reg.StepUpReport(req.Action.Name)
	outcome, err := StepUpOutcome(req.Context)
	if err != nil {
		return nil, err
	}
	if len(rules) == 0 {
		return nil, nil
	}
	if outcome == "" {
		return nil, fmt.Errorf("%w: action %s reports a step-up outcome, and context.step_up is missing", ErrStepUp, req.Action.Name)
	}
	return &stepUpReport{rules: rules, outcome: outcome}, nil
}

// refuseReporters denies a report from an application its rules do not
// let report (the fact names each rule that refused it); the rules of one
// report action list the same reporters (signals.ParseRegistry checks).
func refuseReporters(rep *stepUpReport, app string) []SignalFact {
	var out []SignalFact
	for _, r := range rep.rules {
		if !slices.Contains(r.Reporters, app) {
			out = append(out, SignalFact{Role: SignalRoleRequest, Entity: "application " + app, Transmitter: TransmitterPDP,
				Event: EventStepUpReport, Rule: r.Name, Effect: signals.EffectDeny, Reason: ReasonReportNotAllowed})
		}
	}
	return out
}

// countStepUp reserves the count of an allowed report in every rule it
// names and records each count in the decision.
func (e *Engine) countStepUp(j *job) {
	rep := j.signals.stepUp
	subject := entityKey(j.in.Principal)
	p := e.pendingFor(j)
	for _, r := range rep.rules {
		n := e.velocity.reportStepUp(p, j.index, r, subject, rep.outcome, j.start)
		j.d.Signals = append(j.d.Signals, SignalFact{Role: SignalRolePrincipal, Entity: subject, Transmitter: TransmitterPDP,
			Event: EventStepUpReport, EventTime: j.start, Rule: r.Name, Reason: r.Reason, Outcome: rep.outcome, Count: n, Window: r.Window.String()})
	}
}

// publishChange tells the sidecars that a velocity hold began or ended,
// so that they drop the answers they cached; it returns once they have
// (or their leases ran out), like a revoke.
func (e *Engine) publishChange(ctx context.Context) {
	if e.velocity == nil || e.velocity.Feed == nil {
		return
	}
	if _, err := e.velocity.Feed.Publish(ctx, "signals.velocity"); err != nil {
		e.log.WarnContext(ctx, "velocity hold: sidecars not all told", "err", err)
	}
}

// stepUpWords says what a failed step-up fact means.
func stepUpWords(f SignalFact) string {
	if f.Event == EventStepUpReport {
		if f.Effect == signals.EffectDeny {
			return fmt.Sprintf("%s: %s may not report step-up outcomes (failed step-up rule %s); not counted", f.Reason, f.Entity, f.Rule)
		}
		if f.Outcome == StepUpSucceeded {
			return fmt.Sprintf("%s reported a successful step-up: failed step-ups forgotten and any hold lifted (failed step-up rule %s)", f.Entity, f.Rule)
		}
		return fmt.Sprintf("%s reported a failed step-up: %d within %s (failed step-up rule %s)", f.Entity, f.Count, f.Window, f.Rule)
	}
	did := "denied"
	if f.Effect == signals.EffectStepUp {
		did = "allowed only with " + f.Effect
	}
	return fmt.Sprintf("%s (%s): %s failed %d step-up authentications within %s, the last at %s (failed step-up rule %s)",
		did, f.Reason, f.Entity, f.Count, f.Window, f.EventTime.UTC().Format(time.RFC3339), f.Rule)
}
