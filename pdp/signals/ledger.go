package signals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Event is one event of a received SET as the ledger keeps it: who sent
// it, its jti, type and time, the subject as received and the entity it
// was mapped to ("" when no rule of the registry mapped it: stored, and
// ignored).
type Event struct {
	Position    int64           `json:"position"`
	Transmitter string          `json:"transmitter"`
	JTI         string          `json:"jti"`
	Type        string          `json:"type"`
	Time        time.Time       `json:"time"`
	IssuedAt    time.Time       `json:"issued_at"`
	ReceivedAt  time.Time       `json:"received_at"`
	Subject     *SubjectID      `json:"subject,omitempty"`
	Entity      string          `json:"entity,omitempty"`
	Session     string          `json:"session,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`
}

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

// Store keeps the events, append-only. Append assigns positions (after
// every stored one) and fails with ErrDuplicate for a jti it holds.
type Store interface {
	Append(ctx context.Context, events []Event) ([]Event, error)
	// Since returns the events after position, in position order.
	Since(ctx context.Context, after int64) ([]Event, error)
	Close() error
}

// Journal records a received SET in the decision trail before its events
// are stored (write-ahead): adminlog.Journal.
type Journal interface {
	RecordSignal(ctx context.Context, transmitter, jti string, events []Event) error
}

// Publisher is told of every stored SET (the sidecars' change feed); it
// may wait for the sidecars. An error is logged: the signal stands.
type Publisher interface {
	Publish(ctx context.Context, reason string) (uint64, error)
}

// ChangeReason is the change feed reason of a received signal.
const ChangeReason = "signal.receive"

// LedgerConfig are a Ledger's collaborators.
type LedgerConfig struct {
	Store Store
	// Registry is the active bundle's signals registry (for the subject
	// mapping); nil or returning nil maps nothing.
	Registry  func() *Registry
	Journal   Journal
	Publisher Publisher
	Logger    *slog.Logger
	Now       func() time.Time
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
	byEntity map[string][]Event
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
		cfg.Registry = func() *Registry { return nil }
	}
	l := &Ledger{cfg: cfg, log: cfg.Logger, byEntity: map[string][]Event{}, seen: map[string]bool{}}
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
	return nil
}

func (l *Ledger) index(evs []Event) {
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
func (l *Ledger) Receive(ctx context.Context, s *SET) ([]Event, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.Sync(ctx); err != nil {
		return nil, err
	}
	l.mu.RLock()
	dup, closed := l.seen[seenKey(s.Issuer, s.JTI)], l.closed
	l.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if dup {
		return nil, fmt.Errorf("%s %s: %w", s.Issuer, s.JTI, ErrDuplicate)
	}
	reg := l.cfg.Registry()
	now := l.cfg.Now().UTC()
	evs := make([]Event, 0, len(s.Events))
	for _, se := range s.Events {
		e := Event{Transmitter: s.Issuer, JTI: s.JTI, Type: se.Type, Time: se.Time.UTC(), IssuedAt: s.IssuedAt.UTC(),
			ReceivedAt: now, Subject: se.Subject, Payload: se.Payload}
		if se.Subject != nil {
			e.Entity = reg.Map(se.Subject)
			e.Session = se.Subject.SessionID()
		}
		evs = append(evs, e)
	}
	if l.cfg.Journal != nil {
		if err := l.cfg.Journal.RecordSignal(ctx, s.Issuer, s.JTI, evs); err != nil {
			l.log.ErrorContext(ctx, "signal not recorded in the decision trail; not stored", "transmitter", s.Issuer, "jti", s.JTI, "error", err)
			return nil, fmt.Errorf("%s %s: %w: %w", s.Issuer, s.JTI, ErrNotRecorded, err)
		}
	}
	stored, err := l.cfg.Store.Append(ctx, evs)
	if err != nil {
		return nil, fmt.Errorf("signals: store %s %s: %w", s.Issuer, s.JTI, err)
	}
	l.index(stored)
	for _, e := range stored {
		l.log.InfoContext(ctx, "signal received", "transmitter", e.Transmitter, "jti", e.JTI, "type", e.Type,
			"entity", e.Entity, "event_time", e.Time, "position", e.Position)
	}
	if p := l.cfg.Publisher; p != nil {
		if _, perr := p.Publish(ctx, ChangeReason); perr != nil {
			l.log.WarnContext(ctx, "signal not acknowledged by every sidecar; their leases bound it", "error", perr)
		}
	}
	return stored, nil
}

// For returns the events of an entity ("Type::\"id\""), oldest first.
// The slice is shared: do not modify it.
func (l *Ledger) For(entity string) []Event {
	l.mu.RLock()
	evs := l.byEntity[entity]
	l.mu.RUnlock()
	return evs[:len(evs):len(evs)]
}

// History returns every stored event of an entity, oldest first (the
// unmapped ones are in the store only).
func (l *Ledger) History(entity string) []Event {
	return slices.Clone(l.For(entity))
}

// Close closes the ledger (not its store).
func (l *Ledger) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	return nil
}

// Session is what a request says of the session it comes from
// (context.session): its id and when the user authenticated.
type Session struct {
	ID       string
	AuthTime time.Time
	Known    bool // the request carries context.session.auth_time
}

// Applied is an event that holds for a request: the rule it matched and
// what it does to the action ("" when it only informs policies).
type Applied struct {
	Event  Event
	Rule   Rule
	Effect string
}

// Active returns the events of one entity that hold at now for a request
// on action from session: those with a rule, matching it, not expired,
// not lifted by a later event, and for session rules only for sessions
// older than the event (or the very session it names).
func (r *Registry) Active(events []Event, action string, sess Session, now time.Time) []Applied {
	if r == nil {
		return nil
	}
	var out []Applied
	for i, e := range events {
		rule, ok := r.Rules[e.Type]
		if !ok || !matches(rule.Match, e.Payload) {
			continue
		}
		if rule.Duration > 0 && !now.Before(e.Time.Add(rule.Duration)) {
			continue
		}
		if lifted(rule, events, i) {
			continue
		}
		if rule.Scope == ScopeSession {
			if !sess.Known && (e.Session == "" || sess.ID == "") {
				continue
			}
			switch {
			case e.Session != "" && sess.ID != "" && e.Session == sess.ID:
			case e.Session != "" && sess.ID != "" && e.Session != sess.ID:
				continue
			case !sess.Known || !sess.AuthTime.Before(e.Time):
				continue
			}
		}
		out = append(out, Applied{Event: e, Rule: rule, Effect: rule.Effect(action)})
	}
	return out
}

// lifted reports whether a later event of the same entity ends events[i].
func lifted(rule Rule, events []Event, i int) bool {
	if len(rule.LiftedBy) == 0 {
		return false
	}
	e := events[i]
	for j, f := range events {
		if j == i || !slices.Contains(rule.LiftedBy, f.Type) {
			continue
		}
		if f.Time.After(e.Time) || (f.Time.Equal(e.Time) && f.Position > e.Position) {
			return true
		}
	}
	return false
}

// matches reports whether the payload's members equal the wanted strings.
func matches(want map[string]string, payload json.RawMessage) bool {
	if len(want) == 0 {
		return true
	}
	var p map[string]any
	if json.Unmarshal(payload, &p) != nil {
		return false
	}
	for k, v := range want {
		if s, _ := p[k].(string); s != v {
			return false
		}
	}
	return true
}
