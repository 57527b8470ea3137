package signalout

import (
	"context"
	"errors"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
)

// Release checks again the SETs Open read from the outbox for receivers
// naming an application, with the rules given since (ScopeDelegations,
// ScopeConsents), and lets their delivery begin: a SET goes out when the
// receiver's application may read the record (or consent event) as it is
// now, whoever it was queued for — none, another application (the
// receiver was renamed), or this one (its readers may have changed). A
// SET whose record no longer exists goes out only when it was queued for
// this very application (it was allowed then). The others are dropped:
// logged, counted (outcome="dropped") and noted in the outbox. A SET
// whose record cannot be read now (the store failed, or its rule is off
// at this start) is neither sent nor dropped: it stays in the outbox and
// is checked at the next start. Call it once, after the Scope calls; until then those
// receivers get nothing.
func (t *Transmitter) Release(ctx context.Context) {
	for _, q := range t.queues {
		q.mu.Lock()
		held, sets := q.held, q.sets
		q.mu.Unlock()
		if !held {
			continue
		}
		var keep, done []entry
		for _, e := range sets {
			if !e.check {
				keep = append(keep, e)
				continue
			}
			ok, err := t.recheck(ctx, q.r, e)
			switch {
			case err != nil:
				t.log.WarnContext(ctx, "outgoing signal not checked again: kept in the outbox for the next start", "receiver", q.r.Endpoint,
					"application", q.r.Application, "jti", e.JTI, "error", err)
				t.qmu.Lock()
				t.unchecked++
				t.qmu.Unlock()
			case ok:
				e.check = false
				keep = append(keep, e)
			default:
				t.log.WarnContext(ctx, "outgoing signal from the outbox: the receiver's application may not read it now: dropped", "receiver", q.r.Endpoint,
					"application", q.r.Application, "queued_for", e.Application, "jti", e.JTI)
				t.sent.WithLabelValues(q.r.Endpoint, "dropped").Inc()
				done = append(done, entry{Op: "done", JTI: e.JTI, Outcome: "dropped"})
			}
		}
		if len(done) > 0 {
			if err := t.box.append(done...); err != nil {
				t.log.WarnContext(ctx, "signal outbox: dropped signals not noted (checked again at the next start)", "error", err)
			}
		}
		q.mu.Lock()
		q.sets = append(keep, q.sets[len(sets):]...)
		q.held = false
		q.mu.Unlock()
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// errNoRule is a kind of SET whose visibility rule was not given at this
// start (consent or delegations switched off): the SET is kept unsent in
// the outbox, as when the store fails, not dropped.
var errNoRule = errors.New("no visibility rule for this kind of signal at this start")

// goneSentTo reports whether a SET whose record (or consent event) no
// longer exists — retention, erasure — still goes to r: only when it was
// queued for r's own application, which was allowed to read it then.
func goneSentTo(r Receiver, e entry) bool {
	return e.Application != "" && e.Application == r.Application
}

// recheck reports whether r's application may read, now, what the queued
// SET e is about. A SET that cannot be read is not read (false); an
// event or record that no longer exists is read only when e was queued
// for r's application; an error is a store that did not answer or a kind
// whose rule was not given (errNoRule).
func (t *Transmitter) recheck(ctx context.Context, r Receiver, e entry) (bool, error) {
	name, id := e.about()
	if id == "" {
		return false, nil
	}
	if name == ConsentWithdrawn {
		sc := t.consents.Load()
		if sc == nil || sc.rule == nil {
			return false, errNoRule
		}
		ev, err := sc.rule.Event(ctx, id)
		if errors.Is(err, consent.ErrNotFound) {
			return goneSentTo(r, e), nil
		}
		if err != nil {
			return false, err
		}
		return sc.rule.Sees(ctx, consent.Reader{Application: r.Application, Admin: sc.admins[r.Application]}, ev)
	}
	rd := t.readers.Load()
	if rd == nil || *rd == nil {
		return false, errNoRule
	}
	d, err := (*rd).Get(ctx, id)
	if errors.Is(err, delegation.ErrNotFound) {
		return goneSentTo(r, e), nil
	}
	if err != nil {
		return false, err
	}
	return (*rd).Sees(delegation.Reader{Application: r.Application}, d), nil
}
