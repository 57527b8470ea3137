package signalledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ciampdp/pdp/pdp/changefeed"
	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/internal/detach"
	"github.com/ciampdp/pdp/pdp/signals"
)

// Sentinel errors of the ledger.
var (
	// ErrDuplicate: the transmitter's jti was received before; nothing
	// changed.
	ErrDuplicate = errors.New("this SET (issuer and jti) was received before")
	// ErrNotRecorded: the SET could not be recorded in the decision trail
	// before it was stored, so nothing was changed.
	ErrNotRecorded = errors.New("the signal could not be recorded in the decision trail, so nothing was changed")
	// ErrClosed: the ledger is closed.
	ErrClosed = errors.New("the signal ledger is closed")
)

// Store keeps the events, append-only. Append stores the events of one
// SET, all or none, assigns positions (after every stored one) and fails
// with ErrDuplicate for a jti it holds.
type Store interface {
	Append(ctx context.Context, events []signals.Event) ([]signals.Event, error)
	// Since returns the events after position, in position order.
	Since(ctx context.Context, after int64) ([]signals.Event, error)
	Close() error
}

// Journal records a received SET in the decision trail before its events
// are stored (write-ahead): adminlog.Journal.
type Journal interface {
	RecordSignal(ctx context.Context, transmitter, jti string, events []signals.Event) error
}

// NotAppliedJournal is a Journal that also records a SET it recorded and
// the store then failed to take (adminlog.Journal does): the start-up
// check does not demand such a SET from the store.
type NotAppliedJournal interface {
	SignalNotApplied(ctx context.Context, transmitter, jti string, cause error) error
}

// RevalidatingJournal is a Journal that also records, with a received
// SET, the revalidations its events imply (adminlog.Journal does): the
// start-up check then demands them from the revalidation store.
type RevalidatingJournal interface {
	RecordSignalRevalidating(ctx context.Context, transmitter, jti string, events []signals.Event, revalidates []dormancy.SignalRevalidation) error
}

// Publisher is told of every stored SET (the sidecars' change feed); it
// may wait for the sidecars. An error is logged: the signal stands.
type Publisher interface {
	Publish(ctx context.Context, reason string) (uint64, error)
}

// OnStoredBound bounds LedgerConfig.OnStored, which runs detached from
// the receive's cancellation.
const OnStoredBound = 30 * time.Second

// ChangeReason is the change feed reason of a received signal.
const ChangeReason = "signal.receive"

// LedgerConfig are a Ledger's collaborators.
type LedgerConfig struct {
	Store Store
	// Registry is the active bundle's signals registry (for the subject
	// mapping); nil or returning nil maps nothing.
	Registry  func() *signals.Registry
	Journal   Journal
	Publisher Publisher
	Logger    *slog.Logger
	Now       func() time.Time
	// MaxStaleness, when positive, is how long the ledger may go without
	// a successful Sync (a shared store other replicas write to) before
	// Stale reports it: the engine then denies with facts_unavailable
	// rather than decide on signals it may not have seen.
	MaxStaleness time.Duration
	// OnStored, when set, is told of the events of each stored SET and of
	// the revalidations recorded with it (Revalidates' answer at record
	// time), after the SET is published and outside the write lock (a
	// revalidating identity-provider event ends a dormancy there). It
	// must not fail the receive: the signal stands.
	OnStored func(ctx context.Context, events []signals.Event, revalidates []dormancy.SignalRevalidation)
	// Revalidates, when set, names the revalidations the events of a SET
	// imply (what OnStored makes of them); they are recorded with the SET
	// by a RevalidatingJournal.
	Revalidates func(events []signals.Event) []dormancy.SignalRevalidation
}

// Ledger is the append-only signal ledger: it stores verified SETs once
// (jti de-duplicated), keeps every mapped event indexed by entity in
// memory for the risk guard, and refreshes from a shared store with Sync.
// Safe for concurrent use.
type Ledger struct {
	cfg LedgerConfig
	log *slog.Logger

	wmu sync.Mutex // serialises receives

	mu       sync.RWMutex
	head     int64
	synced   time.Time // the last successful Sync
	byEntity map[string][]signals.Event
	seen     map[string]bool // transmitter + "\x00" + jti
	closed   bool
}

// NewLedger opens a ledger over its store, reading every stored event.
func NewLedger(ctx context.Context, cfg LedgerConfig) (*Ledger, error) {
	if cfg.Store == nil {
		return nil, errors.New("signals: a ledger needs a store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registry == nil {
		cfg.Registry = func() *signals.Registry { return nil }
	}
	l := &Ledger{cfg: cfg, log: cfg.Logger, byEntity: map[string][]signals.Event{}, seen: map[string]bool{}}
	if err := l.Sync(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

func seenKey(transmitter, jti string) string { return transmitter + "\x00" + jti }

// Sync reads the events other writers (replicas on the same PostgreSQL
// store) appended since the last read.
func (l *Ledger) Sync(ctx context.Context) error {
	l.mu.RLock()
	head := l.head
	l.mu.RUnlock()
	evs, err := l.cfg.Store.Since(ctx, head)
	if err != nil {
		return fmt.Errorf("signals: read the ledger: %w", err)
	}
	l.index(evs)
	l.mu.Lock()
	l.synced = l.cfg.Now()
	l.mu.Unlock()
	return nil
}

// Stale reports, with MaxStaleness set, that the last successful Sync is
// older than it at now: signals other replicas stored may be missing.
func (l *Ledger) Stale(now time.Time) error {
	if l.cfg.MaxStaleness <= 0 {
		return nil
	}
	l.mu.RLock()
	synced := l.synced
	l.mu.RUnlock()
	if age := now.Sub(synced); age > l.cfg.MaxStaleness {
		return fmt.Errorf("the signal ledger was last read %s ago (more than %s): the shared store does not answer", age.Round(time.Millisecond), l.cfg.MaxStaleness)
	}
	return nil
}

func (l *Ledger) index(evs []signals.Event) {
	if len(evs) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range evs {
		if e.Position <= l.head {
			continue
		}
		l.head = e.Position
		l.seen[seenKey(e.Transmitter, e.JTI)] = true
		if e.Entity != "" {
			l.byEntity[e.Entity] = append(l.byEntity[e.Entity], e)
		}
	}
}

// Head is the position of the last event read.
func (l *Ledger) Head() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.head
}

// Receive stores the events of a verified SET: mapped to entities by the
// registry, recorded in the journal first, then appended, indexed and
// published. A jti received before is ErrDuplicate and changes nothing.
//
// What the stored SET implies (OnStored) is made after the write lock is
// released and the change published: a slow revalidation store delays
// neither other SETs nor this one's publish.
func (l *Ledger) Receive(ctx context.Context, s *signals.SET) ([]signals.Event, error) {
	stored, revalidates, err := l.receive(ctx, s)
	if err != nil {
		return nil, err
	}
	if l.cfg.OnStored != nil {
		// The signal is stored: what it implies (a revalidation) is made
		// even when the transmitter hangs up now, or its retry would be
		// answered "duplicate" and the implication never made. Exactly
		// the revalidations recorded with the SET are made.
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), OnStoredBound)
		l.cfg.OnStored(octx, stored, revalidates)
		cancel()
	}
	return stored, nil
}

// receive records, stores, indexes and publishes a SET under the write
// lock; it returns the stored events and the revalidations recorded with
// them.
func (l *Ledger) receive(ctx context.Context, s *signals.SET) ([]signals.Event, []dormancy.SignalRevalidation, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.Sync(ctx); err != nil {
		return nil, nil, err
	}
	l.mu.RLock()
	dup, closed := l.seen[seenKey(s.Issuer, s.JTI)], l.closed
	l.mu.RUnlock()
	if closed {
		return nil, nil, ErrClosed
	}
	if dup {
		return nil, nil, fmt.Errorf("%s %s: %w", s.Issuer, s.JTI, ErrDuplicate)
	}
	reg := l.cfg.Registry()
	now := l.cfg.Now().UTC()
	evs := make([]signals.Event, 0, len(s.Events))
	for _, se := range s.Events {
		e := signals.Event{Transmitter: s.Issuer, JTI: s.JTI, Type: se.Type, Time: se.Time.UTC(), IssuedAt: s.IssuedAt.UTC(),
			ReceivedAt: now, Subject: se.Subject, Payload: se.Payload}
		if se.Subject != nil {
			e.Entity = reg.Map(se.Subject)
			e.Session = se.Subject.SessionID()
		}
		if err := e.Validate(); err != nil {
			return nil, nil, &signals.SETError{Code: signals.ErrCodeInvalidRequest, Description: err.Error()}
		}
		evs = append(evs, e)
	}
	// The revalidations the events imply are computed once, against the
	// bundle active now: recorded with the SET and made once it is stored.
	var revalidates []dormancy.SignalRevalidation
	if l.cfg.Revalidates != nil {
		revalidates = l.cfg.Revalidates(evs)
	}
	if l.cfg.Journal != nil {
		record := l.cfg.Journal.RecordSignal
		if rj, ok := l.cfg.Journal.(RevalidatingJournal); ok && len(revalidates) > 0 {
			record = func(ctx context.Context, transmitter, jti string, events []signals.Event) error {
				return rj.RecordSignalRevalidating(ctx, transmitter, jti, events, revalidates)
			}
		}
		if err := record(ctx, s.Issuer, s.JTI, evs); err != nil {
			l.log.ErrorContext(ctx, "signal not recorded in the decision trail; not stored", "transmitter", s.Issuer, "jti", s.JTI, "error", err)
			return nil, nil, fmt.Errorf("%s %s: %w: %w", s.Issuer, s.JTI, ErrNotRecorded, err)
		}
	}
	// Recorded as coming before it is stored (an outbox: see
	// changefeed.Begin), published once stored.
	finish, berr := changefeed.Begin(ctx, l.cfg.Publisher, ChangeReason)
	if berr != nil {
		l.log.WarnContext(ctx, "change feed: publishing the signal after it is stored only", "error", berr)
	}
	// The position before the append: the background sync (which does not
	// take wmu) may index the committed rows before a lost reply is known.
	before := l.Head()
	stored, err := l.cfg.Store.Append(ctx, evs)
	if err != nil && len(stored) == 0 && !errors.Is(err, ErrDuplicate) {
		// A lost COMMIT reply, or a file the store could not cut back
		// after a failed sync, may hold the SET all the same: it is read
		// again before it is called not applied.
		if found := l.storedAnyway(ctx, evs, before); len(found) > 0 {
			l.log.WarnContext(ctx, "the signal store failed the append but holds the SET's events: taken as stored",
				"transmitter", s.Issuer, "jti", s.JTI, "stored", len(found), "events", len(evs), "error", err)
			stored = found
			if len(found) == len(evs) {
				err = nil
			}
		}
	}
	if err != nil {
		_, _ = finish(ctx, false)
		if len(stored) > 0 {
			// A store that broke its all-or-none promise: the trail
			// keeps demanding the whole SET, so the start-up check names
			// what is missing rather than a not_applied record hiding it.
			l.index(stored)
			l.log.ErrorContext(ctx, "signal stored in part; not recorded as not applied: the start-up check will name it",
				"transmitter", s.Issuer, "jti", s.JTI, "stored", len(stored), "events", len(evs), "error", err)
			return nil, nil, fmt.Errorf("signals: store %s %s: %w", s.Issuer, s.JTI, err)
		}
		l.notApplied(ctx, s.Issuer, s.JTI, err)
		return nil, nil, fmt.Errorf("signals: store %s %s: %w", s.Issuer, s.JTI, err)
	}
	l.index(stored)
	for _, e := range stored {
		l.log.InfoContext(ctx, "signal received", "transmitter", e.Transmitter, "jti", e.JTI, "type", e.Type,
			"entity", e.Entity, "event_time", e.Time, "position", e.Position)
	}
	if _, perr := finish(ctx, true); perr != nil {
		l.log.WarnContext(ctx, "signal not acknowledged by every sidecar; their leases bound it", "error", perr)
	}
	return stored, revalidates, nil
}

// RereadBound bounds the read of the store after a failed append (and
// its retries while the store does not answer).
const RereadBound = 5 * time.Second

// storedAnyway reads the store above before (the head before the append,
// so rows a concurrent Sync indexed meanwhile are read too) after a
// failed append of evs (one SET) for the events this receive stored all
// the same (same transmitter, jti and receive instant; another replica's
// copy of the jti is not this receive's). It reads detached from the
// request's cancellation, retrying for RereadBound or until the
// request's deadline if that comes first; nil when the store holds none
// of them or does not answer.
func (l *Ledger) storedAnyway(ctx context.Context, evs []signals.Event, before int64) []signals.Event {
	ctx, cancel := detach.Within(ctx, RereadBound)
	defer cancel()
	for {
		all, err := l.cfg.Store.Since(ctx, before)
		if err == nil {
			var found []signals.Event
			for _, e := range all {
				if e.Transmitter == evs[0].Transmitter && e.JTI == evs[0].JTI && e.ReceivedAt.Equal(evs[0].ReceivedAt) {
					found = append(found, e)
				}
			}
			return found
		}
		select {
		case <-ctx.Done():
			l.log.ErrorContext(ctx, "the signal store does not answer after a failed append: recorded as not applied",
				"transmitter", evs[0].Transmitter, "jti", evs[0].JTI, "error", err)
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// notApplied records in the journal that a recorded SET was not stored,
// a duplicate too (another replica stored the jti first, perhaps with
// other events: the store keeps that copy, and this one must not be
// demanded from it).
func (l *Ledger) notApplied(ctx context.Context, transmitter, jti string, cause error) {
	j, ok := l.cfg.Journal.(NotAppliedJournal)
	if !ok {
		return
	}
	if err := j.SignalNotApplied(ctx, transmitter, jti, cause); err != nil {
		l.log.ErrorContext(ctx, "signal recorded but not stored, and that could not be recorded: the start-up check will name it",
			"transmitter", transmitter, "jti", jti, "error", err)
	}
}

// Since reads the store's events after a position (the start-up check
// compares them with the decision trail).
func (l *Ledger) Since(ctx context.Context, after int64) ([]signals.Event, error) {
	return l.cfg.Store.Since(ctx, after)
}

// For returns the events of an entity ("Type::\"id\""), oldest first.
// The slice is shared: do not modify it.
func (l *Ledger) For(entity string) []signals.Event {
	l.mu.RLock()
	evs := l.byEntity[entity]
	l.mu.RUnlock()
	return evs[:len(evs):len(evs)]
}

// History returns every stored event of an entity, oldest first (the
// unmapped ones are in the store only).
func (l *Ledger) History(entity string) []signals.Event {
	return slices.Clone(l.For(entity))
}

// Close closes the ledger (not its store).
func (l *Ledger) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	return nil
}
