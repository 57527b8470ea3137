package consent

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// Grant is a grant in force, as its events made it: given, and renewed
// since (Notice, Expires, PurposeVersion, Actor and Position are the
// latest event's).
type Grant struct {
	ID             string     `json:"id"`
	Purpose        string     `json:"purpose"`
	PurposeVersion int        `json:"purpose_version"`
	Applications   []string   `json:"applications,omitempty"`
	Jurisdiction   string     `json:"jurisdiction"`
	Actor          Ref        `json:"actor"`
	Delegation     string     `json:"delegation,omitempty"`
	Notice         Notice     `json:"notice,omitzero"`
	GivenAt        time.Time  `json:"given_at"`
	Expires        *time.Time `json:"expires,omitempty"`
	Position       int64      `json:"position"`
}

// State is a subject's consents at one time: the grants in force (given,
// not withdrawn, revoked or refused since, not expired) in the order
// given, and the purposes refused since their last grant (purpose → the
// refusal's position). A refusal ends every grant of its purpose, as
// Decide has it. Position is the ledger position the state reflects.
type State struct {
	Subject  Ref              `json:"subject"`
	Position int64            `json:"position"`
	Grants   []Grant          `json:"grants"`
	Refusals map[string]int64 `json:"refusals"`
}

// grantRec is a grant while folding the events.
type grantRec struct {
	g   Grant
	end *Event // the withdrawal or revocation that ended it
}

// ended says whether the grant is over at t, and how.
func (r *grantRec) ended(t time.Time) (string, bool) {
	if r.end != nil {
		return fmt.Sprintf("%s at %s (position %d)", r.end.Type, r.end.At.Format(time.RFC3339), r.end.Position), true
	}
	if r.g.Expires != nil && !t.Before(*r.g.Expires) {
		return "expired at " + r.g.Expires.Format(time.RFC3339), true
	}
	return "", false
}

// view is a subject's grants and refusals after a run of events.
type view struct {
	order    []*grantRec
	byID     map[string]*grantRec
	refusals map[string]int64
}

// fold replays a subject's events (position order).
func fold(events []Event) *view {
	v := &view{byID: map[string]*grantRec{}, refusals: map[string]int64{}}
	for _, e := range events {
		switch e.Type {
		case EventGiven:
			id := cmp.Or(e.GrantID, e.ID)
			r := &grantRec{g: Grant{
				ID: id, Purpose: e.Purpose, PurposeVersion: e.PurposeVersion,
				Applications: slices.Clone(e.Applications), Jurisdiction: e.Jurisdiction, Actor: e.Actor,
				Delegation: e.Delegation, Notice: e.Notice, GivenAt: e.At, Expires: cloneTime(e.Expires),
				Position: e.Position,
			}}
			if _, dup := v.byID[id]; !dup {
				v.order = append(v.order, r)
				v.byID[id] = r
			}
			delete(v.refusals, e.Purpose)
		case EventRefused, EventWithdrawn, EventRevoked:
			if e.Type == EventRefused {
				v.refusals[e.Purpose] = e.Position
			}
			end := e
			for _, r := range v.order {
				if r.end == nil && r.g.Purpose == e.Purpose && (e.GrantID == "" || e.GrantID == r.g.ID) {
					r.end = &end
				}
			}
		case EventRenewed:
			if r := v.byID[e.GrantID]; r != nil && r.end == nil {
				r.g.Notice, r.g.Expires, r.g.PurposeVersion = e.Notice, cloneTime(e.Expires), e.PurposeVersion
				r.g.Actor, r.g.Delegation, r.g.Position = e.Actor, e.Delegation, e.Position
			}
		}
	}
	return v
}

// state is the view at time t.
func (v *view) state(subject Ref, t time.Time, position int64) State {
	s := State{Subject: subject, Position: position, Grants: []Grant{}, Refusals: v.refusals}
	for _, r := range v.order {
		if _, ended := r.ended(t); !ended {
			s.Grants = append(s.Grants, r.g)
		}
	}
	return s
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// indexed returns the subject's events from the index, in position order
// (a fresh slice; the events share no memory the caller may change).
func (l *Ledger) indexed(subject Ref) []Event {
	l.mu.RLock()
	var out []Event
	for _, p := range l.purposes[subject] {
		out = append(out, l.idx[indexKey{subject, p}]...)
	}
	l.mu.RUnlock()
	slices.SortFunc(out, func(a, b Event) int { return cmp.Compare(a.Position, b.Position) })
	return out
}

// Current is the subject's state now, from the index (caught up first with
// a shared store, as Check is). Position is the ledger head.
func (l *Ledger) Current(ctx context.Context, subject Ref) (State, error) {
	if err := l.fresh(ctx, 0); err != nil {
		return State{}, err
	}
	head := l.head.Load()
	return fold(l.indexed(subject)).state(subject, l.clock(), head), nil
}

// StateAt recomputes the subject's state at a past time from the stored
// events recorded at or before it (grants that expired by then are out).
// Position is that of the last of those events (0: none).
func (l *Ledger) StateAt(ctx context.Context, subject Ref, at time.Time) (State, error) {
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
	for _, e := range events {
		if !e.RecordedAt.After(at) {
			upto = append(upto, e)
			pos = e.Position
		}
	}
	return fold(upto).state(subject, at, pos), nil
}

// History is every event of the subject, in position order, from the
// store.
func (l *Ledger) History(ctx context.Context, subject Ref) ([]Event, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	return l.store.Events(ctx, subject)
}

// Event is the stored event with the id (ErrNotFound when there is none).
func (l *Ledger) Event(ctx context.Context, id string) (Event, error) {
	if l.closed.Load() {
		return Event{}, ErrClosed
	}
	return l.store.Event(ctx, id)
}

// EventsAfter returns up to limit stored events above the position, in
// position order, from the store.
func (l *Ledger) EventsAfter(ctx context.Context, after int64, limit int) ([]Event, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	return l.scan.EventsAfter(ctx, after, limit)
}

// Receipt signs again the receipt of a stored event (the same claims as
// the one its write returned).
func (l *Ledger) Receipt(ctx context.Context, eventID string) (string, error) {
	if l.closed.Load() {
		return "", ErrClosed
	}
	e, err := l.store.Event(ctx, eventID)
	if err != nil {
		return "", err
	}
	return l.sign(e)
}
