package consent

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotRecorded: the change could not be recorded in the journal (the
// decision trail) before it was applied, so nothing was changed. Callers
// answer it as the trail being unavailable (trail_unavailable).
var ErrNotRecorded = errors.New("the consent change could not be recorded in the decision trail, so nothing was changed")

// Journal records every consent change the Ledger makes, before its
// events are appended (write-ahead): a change whose record fails appends
// nothing, and a record holds the events as they will be stored (all but
// their position, which the store assigns). Import is not journalled.
type Journal interface {
	// RecordConsent makes c durable; an error leaves nothing changed.
	RecordConsent(ctx context.Context, c Change) error
	// ConsentNotApplied records that events of a change RecordConsent took
	// were not appended after all (c holds only those), and why.
	ConsentNotApplied(ctx context.Context, c Change, cause error) error
}

// Change is one journalled consent change: one event, or one per purpose
// a withdrawal ends.
type Change struct {
	// Action is "consent." and the verb: give, refuse, withdraw or renew.
	Action      string  `json:"-"`
	Application string  `json:"-"`
	Events      []Event `json:"events"`
}

// writeJournaled records the events (l.wmu held), then appends and
// indexes each. If an append fails, the events not appended are recorded
// as not applied and the ones stored are returned with the error.
func (l *Ledger) writeJournaled(ctx context.Context, action, app string, events []Event) ([]Event, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	now := l.clock()
	for i := range events {
		events[i].RecordedAt = now
	}
	c := Change{Action: action, Application: app, Events: events}
	if l.jrn != nil {
		if err := l.jrn.RecordConsent(ctx, c); err != nil {
			l.log.ErrorContext(ctx, "consent change not recorded in the decision trail; not applied",
				"action", action, "subject", events[0].Subject.String(), "error", err)
			return nil, fmt.Errorf("%s %s: %w: %w", action, events[0].Subject, ErrNotRecorded, err)
		}
	}
	out := make([]Event, 0, len(events))
	for i, e := range events {
		stored, err := l.write(ctx, e)
		if err != nil {
			if l.jrn != nil {
				rest := Change{Action: action, Application: app, Events: events[i:]}
				if jerr := l.jrn.ConsentNotApplied(ctx, rest, err); jerr != nil {
					// The start-up check names what the trail holds and
					// the ledger lacks; 'pdp repair' appends it.
					l.log.ErrorContext(ctx, "consent change recorded but not applied, and that could not be recorded either",
						"action", action, "event", e.ID, "cause", err, "error", jerr)
				}
			}
			return out, err
		}
		out = append(out, stored)
	}
	return out, nil
}
