package consent

// The package documentation of the ledger (the consent ledger and its
// freshness) is in store.go, after model.go's in go doc.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// DelegationChecker says whether someone may act for a data subject: the
// edge to package delegation.
type DelegationChecker interface {
	// Representative reports whether agent acted for principal under the
	// delegation with id at time at: ok (nil error) when that delegation
	// is in force from principal to agent at that time, with what it
	// allows.
	Representative(ctx context.Context, agent, principal Ref, delegationID string, at time.Time) (Mandate, error)
}

// ActorProver proves that the actor of a change is the person the calling
// application names (package actorproof verifies the actor's token); nil
// trusts the application.
type ActorProver interface {
	Prove(ctx context.Context, app, actorType, actorID string) error
}

// LedgerConfig wires a Ledger.
type LedgerConfig struct {
	// Store keeps the events; required. It must implement Scanner
	// (FileStore and PostgresStore do). The Ledger does not close it.
	Store Store
	// Registry returns the active purposes registry; while it returns nil
	// every write and every Check is refused (ErrNoRegistry).
	Registry func() *Registry
	// Delegations checks representatives; nil refuses every representative
	// and every guardian grant.
	Delegations DelegationChecker
	// Actors, when not nil, proves the actor of every change (see
	// ActorProver).
	Actors ActorProver
	// SigningKey signs receipts as KeyID for Controller. Without one the
	// Ledger makes an ephemeral key and logs a warning: its receipts
	// cannot be verified after a restart.
	SigningKey ed25519.PrivateKey
	KeyID      string
	Controller string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// NewID makes event ids; default "cev-" and a UUIDv7.
	NewID func() string
	// Logger; default discards.
	Logger *slog.Logger
	// Types, when not nil, are the active schema's: subjects and actors of
	// a write must be of a declared type.
	Types TypeChecker
	// FreshnessInterval: with a shared store, how long Check may answer
	// without asking the store for its head (default 0: every Check).
	FreshnessInterval time.Duration
	// ActivityFlushInterval: how often Touch's activity is written to the
	// store; default 5s.
	ActivityFlushInterval time.Duration
	// Journal, when not nil, records every change before it is appended
	// (see Journal).
	Journal Journal
	// Publisher, when not nil, is told of every change that was appended
	// (see Publisher), whoever made it.
	Publisher Publisher
	// Notifier, when not nil, is told of every withdrawal or revocation
	// after it was appended.
	Notifier Notifier
}

// Notifier is told of a change after it was appended (the outgoing risk
// signals queue it); it must return quickly and not fail the change.
type Notifier interface {
	ConsentChanged(ctx context.Context, c Change)
}

// catchUpBatch is how many events one read of the store brings.
const catchUpBatch = 1000

// indexKey is one subject's events for one purpose.
type indexKey struct {
	subject Ref
	purpose string
}

// Ledger is the consent ledger service; safe for concurrent use.
type Ledger struct {
	store      Store
	scan       Scanner
	excl       bool
	registry   func() *Registry
	dels       DelegationChecker
	actors     ActorProver
	types      TypeChecker
	key        ed25519.PrivateKey
	pub        ed25519.PublicKey
	kid        string
	controller string
	now        func() time.Time
	newID      func() string
	log        *slog.Logger
	freshEvery time.Duration
	flushEvery time.Duration

	wmu       sync.Mutex // one write at a time: validate, append, index
	jrn       Journal    // records every change before it is appended; nil: none
	publisher Publisher  // told of every change appended; nil: none
	notify    Notifier   // told of every withdrawal appended; nil: none

	mu       sync.RWMutex
	idx      map[indexKey][]Event // position order; copy-on-write
	purposes map[Ref][]string
	head     atomic.Int64

	catchMu   sync.Mutex
	epoch     time.Time    // base of lastFresh (monotonic)
	lastFresh atomic.Int64 // since epoch; 0: never

	amu    sync.RWMutex
	active map[Ref]time.Time
	dirty  map[Ref]time.Time

	gmu       sync.RWMutex
	guardians map[string]bool // event id → statutory representative; one entry per representative's event

	closed    atomic.Bool
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

// NewLedger builds the index from every event of the store and its
// activity, and starts the activity flusher (stopped by Close).
func NewLedger(c LedgerConfig) (*Ledger, error) {
	if c.Store == nil {
		return nil, errors.New("consent: NewLedger without a Store")
	}
	scan, ok := c.Store.(Scanner)
	if !ok {
		return nil, fmt.Errorf("consent: NewLedger: store %T cannot list its events (Scanner)", c.Store)
	}
	_, excl := c.Store.(exclusive)
	l := &Ledger{
		store: c.Store, scan: scan, excl: excl, registry: c.Registry, dels: c.Delegations, actors: c.Actors, types: c.Types,
		key: c.SigningKey, kid: c.KeyID, controller: c.Controller, now: c.Now, newID: c.NewID, log: c.Logger,
		freshEvery: c.FreshnessInterval, flushEvery: c.ActivityFlushInterval,
		idx: map[indexKey][]Event{}, purposes: map[Ref][]string{}, epoch: time.Now(),
		active: map[Ref]time.Time{}, dirty: map[Ref]time.Time{}, guardians: map[string]bool{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if l.registry == nil {
		l.registry = func() *Registry { return nil }
	}
	l.jrn = c.Journal
	l.publisher = c.Publisher
	l.notify = c.Notifier
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.newID == nil {
		l.newID = func() string { return "cev-" + uuid.Must(uuid.NewV7()).String() }
	}
	if l.flushEvery <= 0 {
		l.flushEvery = 5 * time.Second
	}
	if l.key != nil && len(l.key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("consent: receipt signing key has %d bytes, want %d", len(l.key), ed25519.PrivateKeySize)
	}
	if l.key == nil {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("consent: receipt key: %w", err)
		}
		l.key = key
		l.log.Warn("consent: no receipt signing key configured: using an ephemeral one; its receipts cannot be verified after a restart")
	}
	l.pub = l.key.Public().(ed25519.PublicKey)
	if l.kid == "" {
		l.kid = "consent-" + hex.EncodeToString(l.pub[:8])
	}
	ctx := context.Background()
	if err := l.catchUp(ctx, false); err != nil {
		return nil, fmt.Errorf("consent: load the ledger: %w", err)
	}
	act, err := scan.AllActivity(ctx)
	if err != nil {
		return nil, fmt.Errorf("consent: load activity: %w", err)
	}
	l.active = act
	l.lastFresh.Store(int64(time.Since(l.epoch)) + 1)
	go l.flushLoop()
	return l, nil
}

// clock is now in UTC, without the monotonic reading, as stored.
func (l *Ledger) clock() time.Time { return storedTime(l.now()) }

// Head is the ledger position the index reflects.
func (l *Ledger) Head() int64 { return l.head.Load() }

// PublicKey verifies the ledger's receipts.
func (l *Ledger) PublicKey() ed25519.PublicKey { return l.pub }

// applyLocked puts e in the index (l.mu held). cow: readers may hold the
// old slice, so it is replaced, never changed. An event already indexed
// (same position) is skipped.
func (l *Ledger) applyLocked(e Event, cow bool) {
	k := indexKey{e.Subject, e.Purpose}
	old := l.idx[k]
	if len(old) == 0 {
		l.purposes[e.Subject] = append(l.purposes[e.Subject], e.Purpose)
	}
	i := sort.Search(len(old), func(i int) bool { return old[i].Position >= e.Position })
	if i < len(old) && old[i].Position == e.Position {
		return
	}
	if !cow && i == len(old) {
		l.idx[k] = append(old, e)
		return
	}
	n := make([]Event, len(old)+1)
	copy(n, old[:i])
	n[i] = e
	copy(n[i+1:], old[i:])
	l.idx[k] = n
}

// catchUp indexes every event of the store above the head.
func (l *Ledger) catchUp(ctx context.Context, cow bool) error {
	l.catchMu.Lock()
	defer l.catchMu.Unlock()
	for {
		evs, err := l.scan.EventsAfter(ctx, l.head.Load(), catchUpBatch)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		l.mu.Lock()
		for _, e := range evs {
			l.applyLocked(e, cow)
			if e.Position > l.head.Load() {
				l.head.Store(e.Position)
			}
		}
		l.mu.Unlock()
		if len(evs) < catchUpBatch {
			return nil
		}
	}
}

// fresh makes the index current enough for a decision: with a shared
// store, caught up with the store's head (asked at most once per
// freshEvery) and in any case at least at minPosition.
func (l *Ledger) fresh(ctx context.Context, minPosition int64) error {
	if l.closed.Load() {
		return ErrClosed
	}
	if !l.excl {
		now := int64(time.Since(l.epoch))
		due := l.freshEvery <= 0 || time.Duration(now-l.lastFresh.Load()) >= l.freshEvery
		switch {
		case minPosition > l.head.Load():
			// Reading every event above the head is as fresh as asking.
			if err := l.catchUp(ctx, true); err != nil {
				return fmt.Errorf("consent: catch up with the ledger: %w", err)
			}
			l.lastFresh.Store(now)
		case due:
			h, err := l.store.Head(ctx)
			if err != nil {
				return fmt.Errorf("consent: ledger head: %w", err)
			}
			if h > l.head.Load() {
				if err := l.catchUp(ctx, true); err != nil {
					return fmt.Errorf("consent: catch up with the ledger: %w", err)
				}
			}
			l.lastFresh.Store(now)
		}
	}
	if h := l.head.Load(); minPosition > h {
		return fmt.Errorf("%w: position %d asked, head %d", ErrStale, minPosition, h)
	}
	return nil
}

// Check is the decision path: Decide on the subject's events for the
// purpose from the index, their last activity and the guardian check, with
// Position the ledger head the index reflects. With a FileStore it does no
// I/O; with PostgreSQL see the package's freshness rule.
func (l *Ledger) Check(ctx context.Context, q CheckQuery) (CheckResult, error) {
	return l.CheckAt(ctx, q, 0)
}

// CheckAt is Check on an index that includes position minPosition (the
// position a write returned): it catches up until it does, or fails with
// ErrStale when the store has no such position.
func (l *Ledger) CheckAt(ctx context.Context, q CheckQuery, minPosition int64) (CheckResult, error) {
	rs, err := l.checkAll(ctx, []CheckQuery{q}, minPosition)
	if err != nil {
		return CheckResult{}, err
	}
	return rs[0], nil
}

// guardian is the guardianOK of Decide: the event was made by a statutory
// representative of its subject, in force at the event's time. Answers are
// cached by event id (an event never changes); errors are not (they may be
// passing).
func (l *Ledger) guardian(ctx context.Context) func(Event) bool {
	if l.dels == nil {
		return func(Event) bool { return false }
	}
	return func(e Event) bool {
		if e.Delegation == "" || e.Actor == e.Subject {
			return false
		}
		l.gmu.RLock()
		ok, hit := l.guardians[e.ID]
		l.gmu.RUnlock()
		if hit {
			return ok
		}
		m, err := l.dels.Representative(ctx, e.Actor, e.Subject, e.Delegation, e.At)
		statutory := m.Statutory
		if err != nil {
			l.log.Debug("consent: guardian check", "event", e.ID, "delegation", e.Delegation, "err", err)
			return false
		}
		l.gmu.Lock()
		l.guardians[e.ID] = statutory
		l.gmu.Unlock()
		return statutory
	}
}

// Touch records that the subject was active at at (a decision about
// them): in memory at once, in the store within ActivityFlushInterval.
// After Close it stores nothing and logs an error with the subject (a
// decision recorded while shutdown gave up draining, whose mark came
// after the final flush): its activity is lost, and the log says whose.
// A Touch racing Close is either in Close's final flush or logged: the
// flush takes the same lock after closed is set.
func (l *Ledger) Touch(subject Ref, at time.Time) {
	at = storedTime(at)
	l.amu.Lock()
	if l.closed.Load() {
		l.amu.Unlock()
		l.log.Error("consent: activity after the ledger closed is not stored", "subject", subject.String(), "at", at)
		return
	}
	if cur, ok := l.active[subject]; !ok || at.After(cur) {
		l.active[subject] = at
		l.dirty[subject] = at
	}
	l.amu.Unlock()
}

func (l *Ledger) flushLoop() {
	defer close(l.done)
	t := time.NewTicker(l.flushEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.flushEvery)
			if err := l.FlushActivity(ctx); err != nil {
				l.log.Warn("consent: flush activity", "err", err)
			}
			cancel()
		}
	}
}

// FlushActivity writes the activity recorded by Touch since the last
// flush to the store. What fails stays queued for the next flush: l.dirty
// holds every mark not known to be stored, including those a store that
// persists on demand (FileStore) took in memory but failed to persist.
func (l *Ledger) FlushActivity(ctx context.Context) error {
	l.amu.Lock()
	dirty := l.dirty
	l.dirty = map[Ref]time.Time{}
	l.amu.Unlock()
	var errs []error
	if b, ok := l.store.(activityBatcher); ok && len(dirty) > 1 {
		if unstored, err := b.SetActivities(ctx, dirty); err != nil {
			// The marks not stored are kept for the next flush (or
			// logged by Close); the chunks stored before are not.
			l.requeue(unstored)
			return fmt.Errorf("consent: flush activity (%d of %d subjects not stored): %w", len(unstored), len(dirty), err)
		}
	} else {
		for s, at := range dirty {
			if err := l.store.SetActivity(ctx, s, at); err != nil {
				errs = append(errs, err)
				l.requeue(map[Ref]time.Time{s: at})
			}
		}
	}
	if f, ok := l.store.(activityFlusher); ok {
		if err := f.FlushActivity(); err != nil {
			// The store holds them in memory only: set again at the next
			// flush (the store keeps the later time), logged by Close.
			errs = append(errs, err)
			l.requeue(dirty)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("consent: flush activity (%d subjects): %w", len(dirty), err)
	}
	return nil
}

// requeue puts marks back into l.dirty for the next flush, keeping the
// later time of a subject touched since.
func (l *Ledger) requeue(marks map[Ref]time.Time) {
	l.amu.Lock()
	defer l.amu.Unlock()
	for s, at := range marks {
		if cur, ok := l.dirty[s]; !ok || at.After(cur) {
			l.dirty[s] = at
		}
	}
}

// maxUnstoredLines bounds the lines Close logs for marks it could not
// store: one per subject up to it, then one with the count left.
const maxUnstoredLines = 100

// logUnstored logs, at Error, each activity mark still queued (after
// Close's final flush failed: nothing will store it), with its subject
// and time, at most maxUnstoredLines of them (subjects in order), then
// one line with how many more were lost.
func (l *Ledger) logUnstored(cause error) {
	l.amu.Lock()
	marks := l.dirty
	l.dirty = map[Ref]time.Time{}
	l.amu.Unlock()
	if len(marks) == 0 {
		return
	}
	subjects := make([]Ref, 0, len(marks))
	for s := range marks {
		subjects = append(subjects, s)
	}
	sort.Slice(subjects, func(i, j int) bool { return subjects[i].String() < subjects[j].String() })
	for i, s := range subjects {
		if i == maxUnstoredLines {
			l.log.Error("consent: more activity not stored at close", "subjects", len(subjects)-i, "err", cause)
			return
		}
		l.log.Error("consent: activity not stored at close", "subject", s.String(), "at", marks[s], "err", cause)
	}
}

// Close stops the flusher and flushes the activity: one attempt, within
// 10 seconds (no retry). When that final flush fails, each mark it could
// not store is logged at Error with its subject and time (see
// logUnstored); marks of chunks stored before a failed one are not:
// every mark is stored or logged, never both. It does not close the store. Later calls fail with
// ErrClosed.
func (l *Ledger) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.stop)
		<-l.done
		l.wmu.Lock()
		l.closed.Store(true)
		l.wmu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = l.FlushActivity(ctx)
		if err != nil {
			l.logUnstored(err)
		}
	})
	return err
}
