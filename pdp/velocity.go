package pdp

import (
	"slices"
	"time"

	"github.com/ciampdp/pdp/pdp/signals"
)

// DefaultVelocityKeys bounds how many counted values (rule and value,
// e.g. one IP) a Velocity keeps.
const DefaultVelocityKeys = 100_000

// Velocity counts the denied decisions of this PDP for the signals
// registry's velocity rules: per rule and context value (an IP), the
// distinct subjects denied within the rule's window; at the threshold the
// value is blocked for the rule's block period. It counts the reported
// failed step-ups of the failed step-up rules the same way, per rule and
// subject. A decision's changes are reserved while it is evaluated and
// made once its record is durable (see Pending). Everything is in memory
// and bounded: at most MaxKeys values, and apart from them at most
// MaxKeys subjects (when full, those with nothing left in their window,
// no block and nothing pending are evicted; if none is, a new one is not
// counted and Dropped grows). Each replica counts its own decisions. Safe
// for concurrent use.
type Velocity struct {
	// MaxKeys bounds the counted values, and apart from them the counted
	// subjects (failed step-up rules); 0 means DefaultVelocityKeys.
	MaxKeys int
	// Feed, when set, is told when a block or hold begins or ends, so
	// that sidecars drop the answers they cached.
	Feed ChangePublisher

	values   windowCounts[string]
	subjects windowCounts[stepUpKey]
}

func (v *Velocity) maxKeys() int {
	if v.MaxKeys <= 0 {
		return DefaultVelocityKeys
	}
	return v.MaxKeys
}

func velocityKey(rule, value string) string { return rule + "\x00" + value }

// velocityRule is the sliding window of a velocity rule.
func velocityRule(r signals.VelocityRule) windowRule {
	return windowRule{window: r.Window, block: r.Block, threshold: r.Threshold, distinct: true}
}

// observe reserves, in p for its decision i, the count of a denied
// decision of subject with the request's values (by context key) for
// every velocity rule of reg. A decision the velocity rule itself denied
// is not counted (a block does not feed itself).
func (v *Velocity) observe(p *Pending, i int, reg *signals.Registry, values map[string]string, subject string, reasons []string, at time.Time) {
	if reg == nil || len(values) == 0 {
		return
	}
	for _, r := range reg.Velocity {
		val, ok := values[r.Key]
		if !ok || slices.Contains(reasons, r.Reason) {
			continue
		}
		k := velocityKey(r.Name, val)
		_, id, begins := v.values.reserveBegins(k, windowChange{owner: p.owner, rule: velocityRule(r), ev: windowEvent{who: subject, at: at}}, v.maxKeys())
		p.reserve(pendingItem{decision: i, kind: pendingVelocity, id: id, value: k, blocking: begins})
	}
}

// blocked returns a fact for each velocity rule that blocks one of the
// request's values at at, as the decisions of owner see the counts.
func (v *Velocity) blocked(reg *signals.Registry, values map[string]string, owner uint64, at time.Time) []SignalFact {
	if reg == nil || len(values) == 0 {
		return nil
	}
	var out []SignalFact
	for _, r := range reg.Velocity {
		val, ok := values[r.Key]
		if !ok {
			continue
		}
		s, ok := v.values.blocked(velocityKey(r.Name, val), owner, at)
		if !ok {
			continue
		}
		out = append(out, SignalFact{
			Role: SignalRoleRequest, Entity: r.Key + " " + val, Transmitter: TransmitterPDP, Event: "velocity",
			EventTime: s.blockedAt, Rule: r.Name, Effect: signals.EffectDeny, Reason: r.Reason,
			Count: s.count, Window: r.Window.String(),
		})
	}
	return out
}

// Dropped counts values and subjects not counted because their bound was
// reached.
func (v *Velocity) Dropped() uint64 {
	_, a := v.values.stats()
	_, b := v.subjects.stats()
	return a + b
}
