package pdp

import (
	"slices"
	"sync"
	"time"

	"github.com/ciampdp/pdp/pdp/signals"
)

// DefaultVelocityKeys bounds how many counted values (rule and value,
// e.g. one IP) a Velocity keeps.
const DefaultVelocityKeys = 100_000

// Velocity counts the denied decisions of this PDP for the signals
// registry's velocity rules: per rule and context value (an IP), the
// distinct subjects denied within the rule's window; at the threshold the
// value is blocked for the rule's block period. Everything is in memory
// and bounded: at most MaxKeys values (when full, values with nothing
// left in their window and no block are evicted; if none is, a new value
// is not counted and Dropped grows). Each replica counts its own
// decisions. Safe for concurrent use.
type Velocity struct {
	// MaxKeys bounds the counted values, and apart from them the counted
	// subjects (failed step-up rules); 0 means DefaultVelocityKeys.
	MaxKeys int
	// Feed, when set, is told when a block or hold begins or ends, so
	// that sidecars drop the answers they cached.
	Feed ChangePublisher

	mu        sync.Mutex
	byKey     map[string]*velocityCounter
	bySubject map[stepUpKey]*stepUpCounter
	dropped   uint64
}

type velocityCounter struct {
	hits         []velocityHit // distinct subjects, oldest first; at most the threshold
	blockedUntil time.Time
	blockedAt    time.Time
	count        int
}

type velocityHit struct {
	subject string
	at      time.Time
}

func velocityKey(rule, value string) string { return rule + "\x00" + value }

// observe counts a denied decision of subject with the request's values
// (by context key) for every velocity rule of reg. A decision the
// velocity rule itself denied is not counted (a block does not feed
// itself). changed says whether a block began.
func (v *Velocity) observe(reg *signals.Registry, values map[string]string, subject string, reasons []string, at time.Time) (changed bool) {
	if reg == nil || len(values) == 0 {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.byKey == nil {
		v.byKey = map[string]*velocityCounter{}
	}
	for _, r := range reg.Velocity {
		val, ok := values[r.Key]
		if !ok || slices.Contains(reasons, r.Reason) {
			continue
		}
		k := velocityKey(r.Name, val)
		c := v.byKey[k]
		if c == nil {
			if !v.room(at, false) {
				v.dropped++
				continue
			}
			c = &velocityCounter{}
			v.byKey[k] = c
		}
		from := at.Add(-r.Window)
		c.hits = slices.DeleteFunc(c.hits, func(h velocityHit) bool { return h.at.Before(from) || h.subject == subject })
		c.hits = append(c.hits, velocityHit{subject: subject, at: at})
		if len(c.hits) >= r.Threshold {
			changed = changed || !c.blockedUntil.After(at)
			c.blockedAt, c.blockedUntil, c.count = at, at.Add(r.Block), len(c.hits)
			c.hits = c.hits[:0]
		}
	}
	return changed
}

// room makes room for one more counter of its kind (v.mu held): values of
// the velocity rules and subjects of the failed step-up rules are bounded
// apart, so a flood of values (IPs) cannot crowd out the step-up counts,
// nor the other way round.
func (v *Velocity) room(at time.Time, stepUp bool) bool {
	max := v.MaxKeys
	if max <= 0 {
		max = DefaultVelocityKeys
	}
	if stepUp {
		if len(v.bySubject) < max {
			return true
		}
		for k, c := range v.bySubject {
			if !c.blockedUntil.After(at) && (len(c.failures) == 0 || at.Sub(c.failures[len(c.failures)-1]) > c.window) {
				delete(v.bySubject, k)
			}
		}
		return len(v.bySubject) < max
	}
	if len(v.byKey) < max {
		return true
	}
	for k, c := range v.byKey {
		if !c.blockedUntil.After(at) && (len(c.hits) == 0 || at.Sub(c.hits[len(c.hits)-1].at) > time.Hour) {
			delete(v.byKey, k)
		}
	}
	return len(v.byKey) < max
}

// blocked returns a fact for each velocity rule that blocks one of the
// request's values at at.
func (v *Velocity) blocked(reg *signals.Registry, values map[string]string, at time.Time) []SignalFact {
	if reg == nil || len(values) == 0 {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []SignalFact
	for _, r := range reg.Velocity {
		val, ok := values[r.Key]
		if !ok {
			continue
		}
		c := v.byKey[velocityKey(r.Name, val)]
		if c == nil || !c.blockedUntil.After(at) {
			continue
		}
		out = append(out, SignalFact{
			Role: SignalRoleRequest, Entity: r.Key + " " + val, Transmitter: TransmitterPDP, Event: "velocity",
			EventTime: c.blockedAt, Rule: r.Name, Effect: signals.EffectDeny, Reason: r.Reason,
			Count: c.count, Window: r.Window.String(),
		})
	}
	return out
}

// Dropped counts values not counted because the bound was reached.
func (v *Velocity) Dropped() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dropped
}
