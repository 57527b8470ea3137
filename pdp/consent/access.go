package consent

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// Reader is who reads a data subject's consents: the calling application
// (from its credential) and whether it is a consent administrator, which
// sees everything.
//
// Any other application sees only what it is party to: the events it
// recorded; the grants (and refusals) that cover it; the withdrawals,
// revocations and renewals of those grants; and a refusal, withdrawal or
// revocation of a whole purpose of which it is party to a grant (it ends
// that grant). State, history and receipts are all computed from those
// events only, so an application never learns of another application's
// grants.
type Reader struct {
	Application string
	Admin       bool
}

// visible returns the events of one subject (in position order) that r may
// see.
func (r Reader) visible(events []Event) []Event {
	if r.Admin {
		return events
	}
	grants := map[string]bool{}   // grants r is party to
	purposes := map[string]bool{} // purposes of which r is party to a grant
	var out []Event
	for _, e := range events {
		show := e.Application == r.Application || slices.Contains(e.Applications, r.Application)
		switch {
		case e.Type == EventGiven:
			if show {
				grants[cmp.Or(e.GrantID, e.ID)] = true
				purposes[e.Purpose] = true
			}
		case e.GrantID != "":
			show = show || grants[e.GrantID]
		default: // a refusal, or the end of every grant of the purpose
			show = show || purposes[e.Purpose]
		}
		if show {
			out = append(out, e)
		}
	}
	return out
}

// CurrentFor is Current as r may see it.
func (l *Ledger) CurrentFor(ctx context.Context, subject Ref, r Reader) (State, error) {
	if err := l.fresh(ctx, 0); err != nil {
		return State{}, err
	}
	head := l.head.Load()
	return fold(r.visible(l.indexed(subject))).state(subject, l.clock(), head), nil
}

// StateAtFor is StateAt as r may see it: Position is that of the last
// event recorded by then that r sees (0: none).
func (l *Ledger) StateAtFor(ctx context.Context, subject Ref, at time.Time, r Reader) (State, error) {
	if l.closed.Load() {
		return State{}, ErrClosed
	}
	events, err := l.store.Events(ctx, subject)
	if err != nil {
		return State{}, err
	}
	at = storedTime(at)
	var (
		upto []Event
		pos  int64
	)
	for _, e := range r.visible(events) {
		if !e.RecordedAt.After(at) {
			upto = append(upto, e)
			pos = e.Position
		}
	}
	return fold(upto).state(subject, at, pos), nil
}

// HistoryFor is History as r may see it.
func (l *Ledger) HistoryFor(ctx context.Context, subject Ref, r Reader) ([]Event, error) {
	events, err := l.History(ctx, subject)
	if err != nil {
		return nil, err
	}
	return r.visible(events), nil
}

// ReceiptFor is Receipt for an event r may see; any other is not found,
// exactly as an event that does not exist.
func (l *Ledger) ReceiptFor(ctx context.Context, eventID string, r Reader) (string, error) {
	if l.closed.Load() {
		return "", ErrClosed
	}
	e, err := l.store.Event(ctx, eventID)
	if err != nil {
		return "", err
	}
	ok, err := l.Sees(ctx, r, e)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("consent event %s: %w", eventID, ErrNotFound)
	}
	return l.sign(e)
}

// Sees reports whether r may see the stored event e: the rule of the read
// API (Reader), so that whatever else tells an application of an event —
// an outgoing risk signal — tells it only what it could read. An event
// not stored (yet) is not seen by an application that is not party to it.
func (l *Ledger) Sees(ctx context.Context, r Reader, e Event) (bool, error) {
	if r.Admin || (r.Application != "" && (e.Application == r.Application || slices.Contains(e.Applications, r.Application))) {
		return true, nil
	}
	if r.Application == "" {
		return false, nil
	}
	if l.closed.Load() {
		return false, ErrClosed
	}
	events, err := l.store.Events(ctx, e.Subject)
	if err != nil {
		return false, fmt.Errorf("consent events of %s:%s: %w", e.Subject.Type, e.Subject.ID, err)
	}
	return slices.ContainsFunc(r.visible(events), func(v Event) bool { return v.ID == e.ID }), nil
}
