// # The consent ledger and its freshness
//
// The Ledger is the service in front of a Store: it checks every write
// against the purposes registry (ledger_write.go), appends it, and keeps
// the events of every subject indexed in memory by (subject, purpose) so
// that Check decides without I/O. The index also has a head: every event
// at or below it is in the index; Check reports it as the result's
// Position, and a write returns its event's position, so a caller holding
// a withdrawal's position can ask CheckAt for state that includes it.
//
// With a FileStore one process owns the ledger: every event reaches the
// store through this Ledger, so the index is always current and Check
// never asks the store. A withdrawal is in the index before Withdraw
// returns, hence denied on the very next Check.
//
// With a PostgresStore many replicas write the same ledger. Check must not
// serve state older than a withdrawal another replica wrote, so before it
// answers it compares the index head with the store's head (one indexed
// round trip: SELECT max(position)) and, when the store is ahead, reads the
// events above the index head. LedgerConfig.FreshnessInterval bounds how
// often it asks (default 0: on every Check); a larger interval trades that
// round trip for staleness of at most the interval. CheckBatch answers the
// checks of a batch of decisions after one such comparison, and reads the
// activity of its dormant-looking subjects (see Touch) in one more round
// trip at most. CheckAt(q, p) always
// catches up until the head reaches p, whatever the interval. A write on
// one replica catches up before it validates (the grant it ends must be
// the latest known) and after it appends. Two replicas ending the same
// grant at the same instant can both record an end event; the second
// changes nothing in the state.
//
// When the store cannot be reached, Check fails (ErrStale or the store's
// error): the caller must deny (facts_unavailable) rather than decide on
// state it cannot vouch for.
//
// Activity (Touch) is kept in memory and written to the store every
// ActivityFlushInterval and on Close; it only feeds the dormancy rule.
// With PostgreSQL, a subject that looks dormant in memory is read from the
// store before the decision (another replica may have seen them since).
package consent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Store keeps the consent ledger: events appended, never changed, each at a
// strictly increasing position; and the last activity of each subject.
// Implementations are safe for concurrent use and never share memory with
// their callers (events go in and out as copies).
type Store interface {
	// Append stores e at the next position (head+1 in a file; the next
	// identity value in PostgreSQL, where gaps are possible), setting
	// RecordedAt when it is zero, and returns the event as stored. It is
	// durable (fsynced, committed) before it returns. ErrExists when an
	// event with e.ID is stored already.
	Append(ctx context.Context, e Event) (Event, error)
	// Events returns the subject's events in position order.
	Events(ctx context.Context, subject Ref) ([]Event, error)
	// Event returns the event with the id; ErrNotFound if there is none.
	Event(ctx context.Context, id string) (Event, error)
	// Head returns the highest position stored (0 when empty).
	Head(ctx context.Context) (int64, error)
	// SetActivity records that the subject was active at at; it never moves
	// the recorded time back.
	SetActivity(ctx context.Context, subject Ref, at time.Time) error
	// Activity returns the subject's last activity, false if none.
	Activity(ctx context.Context, subject Ref) (time.Time, bool, error)
	// Activities is Activity for many subjects in one read: the last
	// activity of those that have one.
	Activities(ctx context.Context, subjects []Ref) (map[Ref]time.Time, error)
	Close() error
}

// Scanner is what the Ledger needs beyond Store to build its index of every
// subject and to follow other writers. FileStore and PostgresStore
// implement it.
type Scanner interface {
	// EventsAfter returns up to limit events with a position above after,
	// in position order.
	EventsAfter(ctx context.Context, after int64, limit int) ([]Event, error)
	// AllActivity returns the last activity of every subject that has one.
	AllActivity(ctx context.Context) (map[Ref]time.Time, error)
}

// exclusive is implemented by stores that one process owns (FileStore):
// every event reaches them through this process's Ledger, so its index is
// always current and Check never asks the store.
type exclusive interface{ exclusive() }

// activityFlusher is implemented by stores that keep activity in memory and
// persist it on demand (FileStore).
type activityFlusher interface{ FlushActivity() error }

var (
	_ Scanner         = (*FileStore)(nil)
	_ Scanner         = (*PostgresStore)(nil)
	_ exclusive       = (*FileStore)(nil)
	_ activityFlusher = (*FileStore)(nil)
)

// cloneEvent copies e so that the copy shares no memory with it.
func cloneEvent(e Event) Event {
	e.Applications = slices.Clone(e.Applications)
	if e.Expires != nil {
		t := *e.Expires
		e.Expires = &t
	}
	return e
}

func cloneEvents(es []Event) []Event {
	out := make([]Event, len(es))
	for i, e := range es {
		out[i] = cloneEvent(e)
	}
	return out
}

// checkStorable is what every store demands of an event.
func checkStorable(e Event) error {
	switch {
	case e.ID == "":
		return errors.New("consent: append: event without id")
	case e.Subject.Type == "" || e.Subject.ID == "":
		return fmt.Errorf("consent: append %s: event without subject", e.ID)
	case e.Type == "":
		return fmt.Errorf("consent: append %s: event without type", e.ID)
	}
	return nil
}

// ParseRef reads a subject written as Ref.String() ("user:alice"); a name
// without a type ("alice") is a user.
func ParseRef(s string) (Ref, error) {
	typ, id, ok := strings.Cut(s, ":")
	if !ok {
		typ, id = "user", s
	}
	if typ == "" || id == "" {
		return Ref{}, fmt.Errorf("consent: subject %q: want type:id", s)
	}
	return Ref{Type: typ, ID: id}, nil
}

// storedTime is t as the stores keep it: UTC, without a monotonic reading.
func storedTime(t time.Time) time.Time { return t.UTC().Round(0) }
