// Package revalidation owns what ends dormancy and what reports it: the
// revalidations (file or PostgreSQL store), the service that checks who
// may make them and answers the engine's dormancy guard over the consent
// ledger's activity, and the report on a dormant population.
package revalidation

import (
	"context"
	"errors"
	"fmt"
	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/internal/detach"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/ciampdp/pdp/pdp/delegation"
)

// Errors of a revalidation; the HTTP layer answers them 403, 404 and 422.
var (
	ErrForbidden = errors.New("forbidden")
	ErrNotFound  = errors.New("not found")
	ErrInvalid   = errors.New("invalid revalidation")
	// ErrNotRecorded: the revalidation could not be recorded in the
	// decision trail first, so nothing changed (503, trail_unavailable).
	ErrNotRecorded = errors.New("the revalidation could not be recorded in the decision trail, so nothing was changed")
	// ErrNotStored: the revalidation is in the trail but its store refused
	// it (recorded as dormancy.not_applied where the journal can); it is
	// not in force.
	ErrNotStored = errors.New("the revalidation was recorded in the decision trail but could not be stored, so it is not in force; send it again")
)

// Activity is the PDP's one record of activity (the consent ledger's):
// per identity and role, the last successful decision.
type Activity interface {
	// LastActive returns the last activity of each ref that has one; with
	// a store shared by replicas, refs idle for longer than horizon in
	// memory are read from the store first.
	LastActive(ctx context.Context, refs []Ref, now time.Time, horizon time.Duration) (map[Ref]time.Time, error)
	// Touch records activity in memory; it reaches the store within the
	// flush interval (no I/O on the caller's path).
	Touch(ref Ref, at time.Time)
	// ActivitySnapshot is every ref's last activity (for reports).
	ActivitySnapshot(ctx context.Context) (map[Ref]time.Time, error)
}

// Delegations reads delegation records (*delegation.Service).
type Delegations interface {
	Get(ctx context.Context, id string) (delegation.Delegation, error)
	List(ctx context.Context, f delegation.Filter) ([]delegation.Delegation, error)
	// Sees reports whether the application may read the record (the
	// delegation Service's rule, delegation.Reader).
	Sees(r delegation.Reader, d delegation.Delegation) bool
	// Hides reports whether a change through by must answer about the
	// record as about an id that does not exist (the delegation Service's
	// rule).
	Hides(by delegation.Actor, d delegation.Delegation, parent *delegation.Delegation) bool
}

// ActorProver proves that the actor of a revalidation is the person named
// (package actorproof); nil when actor tokens are off.
type ActorProver interface {
	Prove(ctx context.Context, app, actorType, actorID string) error
}

// Journal records a revalidation in the decision trail before it is
// stored (write-ahead); an error leaves nothing changed.
type Journal interface {
	RecordRevalidation(ctx context.Context, r Revalidation) error
}

// NotAppliedJournal is a Journal that also records a revalidation it
// recorded and the store then failed to take (adminlog.Journal does): the
// start-up check does not demand it from the store.
type NotAppliedJournal interface {
	RevalidationNotApplied(ctx context.Context, r Revalidation, cause error) error
}

// Config builds a Service.
type Config struct {
	Store       Store
	Activity    Activity
	Delegations Delegations // nil: no re-confirmations, no delegations in reports
	Journal     Journal     // nil: not recorded (tests)
	Actors      ActorProver // nil: actors are not proven
	// AdminApplications may revalidate identities (staff, or the identity
	// provider's connector); ReconfirmApplications may carry a
	// principal's re-confirmation of their delegation (the principal is
	// the actor).
	AdminApplications     []string
	ReconfirmApplications []string
	// Shared: the store is shared by replicas (PostgreSQL): a key that
	// looks dormant is caught up from the store before it is decided.
	Shared bool
	Logger *slog.Logger
	Now    func() time.Time
}

// Service keeps the revalidations (an index of the latest per key over
// the store), answers the guard and makes revalidations.
type Service struct {
	c      Config
	log    *slog.Logger
	now    func() time.Time
	wmu    sync.Mutex // one write at a time
	mu     sync.RWMutex
	latest map[string]Revalidation
	// bySource: the signals' revalidations by key and source (one per
	// SET event and subject).
	bySource map[string]Revalidation
	all      []Revalidation // in position order (reports)
	head     int64
}

// NewService loads the revalidations of the store.
func NewService(ctx context.Context, c Config) (*Service, error) {
	s := &Service{c: c, log: c.Logger, now: c.Now, latest: map[string]Revalidation{}, bySource: map[string]Revalidation{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.catchUp(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// catchUp reads what the store holds above the index's head.
func (s *Service) catchUp(ctx context.Context) error {
	s.mu.RLock()
	head := s.head
	s.mu.RUnlock()
	rs, err := s.c.Store.After(ctx, head)
	if err != nil {
		return fmt.Errorf("dormancy: read revalidations: %w", err)
	}
	s.index(rs...)
	return nil
}

func (s *Service) index(rs ...Revalidation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		if r.Position <= s.head {
			continue
		}
		s.head = r.Position
		s.all = append(s.all, r)
		if cur, ok := s.latest[r.Key()]; !ok || !r.At.Before(cur.At) {
			s.latest[r.Key()] = r
		}
		if strings.HasPrefix(r.Source, "signal:") {
			if _, ok := s.bySource[sourceKey(r.Key(), r.Source)]; !ok {
				s.bySource[sourceKey(r.Key(), r.Source)] = r
			}
		}
	}
}

// After reads the store's revalidations above a position (the start-up
// check compares them with the decision trail).
func (s *Service) After(ctx context.Context, pos int64) ([]Revalidation, error) {
	return s.c.Store.After(ctx, pos)
}

// Append stores r as given (its id and time: a revalidation the trail
// owes, which the start-up check makes with adminlog.MakeImplied) without
// recording it again, and indexes it. With Service.After it is an
// adminlog.RevalidationStore.
func (s *Service) Append(ctx context.Context, r Revalidation) (Revalidation, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	stored, err := s.c.Store.Append(ctx, r)
	if err != nil {
		return Revalidation{}, fmt.Errorf("store revalidation %s: %w", r.ID, err)
	}
	if s.c.Shared {
		if err := s.catchUp(ctx); err != nil {
			s.log.WarnContext(ctx, "dormancy: catch up", "err", err)
		}
	}
	s.index(stored)
	return stored, nil
}

// Latest is the latest revalidation of a key ("user:heidi",
// dormancy.DelegationKey(id)).
func (s *Service) Latest(key string) (Revalidation, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.latest[key]
	return r, ok
}

// Revalidations returns those made in [from, to) (zero: unbounded).
func (s *Service) Revalidations(from, to time.Time) []Revalidation {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Revalidation
	for _, r := range s.all {
		if (!from.IsZero() && r.At.Before(from)) || (!to.IsZero() && !r.At.Before(to)) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// RevalidateRequest asks to end an identity's dormancy.
type RevalidateRequest struct {
	Subject Ref    `json:"subject"`
	By      Actor  `json:"by"`
	Reason  string `json:"reason,omitempty"`
}

// RevalidateIdentity records that an identity proved itself again (staff
// checked it, or the identity provider said so): only an application of
// AdminApplications may, with its actor proven when actor tokens are on.
func (s *Service) RevalidateIdentity(ctx context.Context, r RevalidateRequest) (Revalidation, error) {
	if r.Subject.Type == "" || r.Subject.ID == "" {
		return Revalidation{}, fmt.Errorf("%w: the subject needs a type and an id", ErrInvalid)
	}
	if !slices.Contains(s.c.AdminApplications, r.By.Application) {
		return Revalidation{}, fmt.Errorf("%w: application %q may not revalidate identities (dormancy.admin_applications)", ErrForbidden, r.By.Application)
	}
	if r.By.Subject.ID == "" {
		return Revalidation{}, fmt.Errorf("%w: the actor (who revalidates) is required", ErrInvalid)
	}
	if err := s.prove(ctx, r.By); err != nil {
		return Revalidation{}, err
	}
	return s.write(ctx, Revalidation{Kind: dormancy.KindIdentity, Subject: r.Subject, By: r.By, Source: "admin", Reason: r.Reason})
}

// RevalidateOnSignal is the hook of the signals receiver: the identity
// provider said the subject proved itself at the level the bank requires
// (a CAEP assurance-level-change, or a configured event type) in the SET
// transmitter/jti. The revalidation's source names that SET
// (dormancy.SignalSource), and it is made once: a revalidation of the
// subject from the same SET event is returned as it is. The receiver has
// verified the signal; no actor is proven here.
func (s *Service) RevalidateOnSignal(ctx context.Context, subject Ref, transmitter, eventType, jti string) (Revalidation, error) {
	if transmitter == "" || eventType == "" || jti == "" {
		return Revalidation{}, fmt.Errorf("%w: a signal's revalidation needs its transmitter, event type and jti", ErrInvalid)
	}
	return s.Revalidate(ctx, subject, dormancy.SignalSource(transmitter, eventType, jti)[len("signal:"):])
}

// Revalidate makes a signal's revalidation of subject with source
// "signal:"+source (RevalidateOnSignal names the SET); a revalidation of
// the subject with that source is returned as it is.
func (s *Service) Revalidate(ctx context.Context, subject Ref, source string) (Revalidation, error) {
	if subject.Type == "" || subject.ID == "" {
		return Revalidation{}, fmt.Errorf("%w: the subject needs a type and an id", ErrInvalid)
	}
	return s.write(ctx, Revalidation{Kind: dormancy.KindIdentity, Subject: subject, By: Actor{Application: "signals", Subject: subject},
		Source: "signal:" + source})
}

// BySource is the revalidation of a key made with a signal's source
// (dormancy.SignalSource), if the index holds one.
func (s *Service) BySource(key, source string) (Revalidation, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.bySource[sourceKey(key, source)]
	return r, ok
}

func sourceKey(key, source string) string { return key + "\x00" + source }

// ReconfirmRequest asks to end a delegation's dormancy.
type ReconfirmRequest struct {
	Delegation string `json:"-"`
	By         Actor  `json:"by"`
	Reason     string `json:"reason,omitempty"`
}

// ReconfirmDelegation records that the principal of a delegation in force
// confirmed it again. Only the principal may (not the agent, not anyone
// else), through an application of ReconfirmApplications, proven when
// actor tokens are on.
func (s *Service) ReconfirmDelegation(ctx context.Context, r ReconfirmRequest) (Revalidation, error) {
	if s.c.Delegations == nil {
		return Revalidation{}, fmt.Errorf("%w: no delegation records are configured", ErrNotFound)
	}
	if !slices.Contains(s.c.ReconfirmApplications, r.By.Application) && !slices.Contains(s.c.AdminApplications, r.By.Application) {
		return Revalidation{}, fmt.Errorf("%w: application %q may not carry delegation re-confirmations (dormancy.reconfirm_applications)", ErrForbidden, r.By.Application)
	}
	// The actor is proven before the record is read: what follows answers
	// according to who the actor is.
	if err := s.prove(ctx, r.By); err != nil {
		return Revalidation{}, err
	}
	missing := fmt.Errorf("%w: delegation %q", ErrNotFound, r.Delegation)
	d, err := s.c.Delegations.Get(ctx, r.Delegation)
	if errors.Is(err, delegation.ErrNotFound) {
		return Revalidation{}, missing
	}
	if err != nil {
		return Revalidation{}, fmt.Errorf("dormancy: read delegation %s: %w", r.Delegation, err)
	}
	by := delegation.Actor{Application: r.By.Application, Subject: delegation.Ref{Type: r.By.Subject.Type, ID: r.By.Subject.ID}}
	if by.Subject != d.Principal {
		// A record the application may not read, for an actor who takes
		// no part in it, is not found (delegation.Service.Hides); the
		// principal is named only to an application that may read it.
		if s.c.Delegations.Hides(by, d, nil) {
			return Revalidation{}, missing
		}
		if !s.c.Delegations.Sees(delegation.Reader{Application: r.By.Application}, d) {
			return Revalidation{}, fmt.Errorf("%w: only the delegation's principal may re-confirm %s, not %s", ErrForbidden, r.Delegation, r.By.Subject)
		}
		return Revalidation{}, fmt.Errorf("%w: only the delegation's principal (%s) may re-confirm %s, not %s", ErrForbidden, d.Principal, d.ID, r.By.Subject)
	}
	// In force now: the effective status (a delegation stored active is
	// expired past its window, not yet valid before it).
	if st := d.Effective(s.now()); st != delegation.StatusActive {
		return Revalidation{}, fmt.Errorf("%w: delegation %s is %s: only a delegation in force is re-confirmed", ErrInvalid, d.ID, st)
	}
	return s.write(ctx, Revalidation{Kind: dormancy.KindDelegation, Delegation: d.ID, Subject: Ref{Type: d.Principal.Type, ID: d.Principal.ID},
		By: r.By, Source: "admin", Reason: r.Reason})
}

func (s *Service) prove(ctx context.Context, by Actor) error {
	if s.c.Actors == nil {
		return nil
	}
	return s.c.Actors.Prove(ctx, by.Application, by.Subject.Type, by.Subject.ID)
}

// write journals r, then stores and indexes it.
func (s *Service) write(ctx context.Context, r Revalidation) (Revalidation, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if strings.HasPrefix(r.Source, "signal:") {
		// Once per signal: another replica (or the receive before a
		// crash, or 'pdp repair') may have made it.
		if s.c.Shared {
			if err := s.catchUp(ctx); err != nil {
				s.log.WarnContext(ctx, "dormancy: catch up", "err", err)
			}
		}
		if done, ok := s.BySource(r.Key(), r.Source); ok {
			return done, nil
		}
	}
	r.ID = "rv-" + uuid.NewString()
	r.At = s.now().UTC().Round(0)
	if s.c.Journal != nil {
		if err := s.c.Journal.RecordRevalidation(ctx, r); err != nil {
			s.log.ErrorContext(ctx, "revalidation not recorded in the decision trail; not applied", "key", r.Key(), "error", err)
			return Revalidation{}, fmt.Errorf("revalidate %s: %w: %w", r.Key(), ErrNotRecorded, err)
		}
	}
	// The position before the append: a concurrent catch-up (States)
	// may index the committed row before a lost reply is known.
	s.mu.RLock()
	before := s.head
	s.mu.RUnlock()
	stored, err := s.c.Store.Append(ctx, r)
	if err != nil {
		// A lost COMMIT reply, or a file the store could not cut back
		// after a failed sync, may hold it all the same: read again
		// before calling it not applied.
		if found, ok := s.storedAnyway(ctx, r, before); ok {
			s.log.WarnContext(ctx, "the revalidation store failed the append but holds the revalidation: taken as stored",
				"id", r.ID, "key", r.Key(), "error", err)
			stored, err = found, nil
		}
	}
	if err != nil {
		if j, ok := s.c.Journal.(NotAppliedJournal); ok {
			if jerr := j.RevalidationNotApplied(ctx, r, err); jerr != nil {
				s.log.ErrorContext(ctx, "revalidation recorded but not stored, and that could not be recorded: the start-up check will name it",
					"id", r.ID, "key", r.Key(), "error", jerr)
			}
		}
		return Revalidation{}, fmt.Errorf("revalidate %s: %w: %w", r.Key(), ErrNotStored, err)
	}
	if s.c.Shared {
		// Others' revalidations below ours are read first (positions in order).
		if err := s.catchUp(ctx); err != nil {
			s.log.WarnContext(ctx, "dormancy: catch up", "err", err)
		}
	}
	s.index(stored)
	s.log.InfoContext(ctx, "revalidation recorded", "id", stored.ID, "kind", stored.Kind, "key", stored.Key(), "by", stored.By.Subject.String(), "source", stored.Source)
	return stored, nil
}

// RereadContext is ctx without its cancellation, bounded by bound or by
// ctx's own deadline, whichever comes first: a read-back outlives a
// caller that hangs up, never the caller's deadline.
func RereadContext(ctx context.Context, bound time.Duration) (context.Context, context.CancelFunc) {
	return detach.Within(ctx, bound)
}

// RereadBound bounds the read of the store after a failed append (and
// its retries while the store does not answer).
const RereadBound = 5 * time.Second

// storedAnyway reads the store above before (the index's head before the
// append) after a failed append of r for r itself (by id), detached from
// the request's cancellation and retried for RereadBound, or until the
// request's deadline if that comes first; false when the store lacks it
// or does not answer.
func (s *Service) storedAnyway(ctx context.Context, r Revalidation, before int64) (Revalidation, bool) {
	ctx, cancel := RereadContext(ctx, RereadBound)
	defer cancel()
	for {
		rs, err := s.c.Store.After(ctx, before)
		if err == nil {
			for _, got := range rs {
				if got.ID == r.ID {
					return got, true
				}
			}
			return Revalidation{}, false
		}
		select {
		case <-ctx.Done():
			s.log.ErrorContext(ctx, "the revalidation store does not answer after a failed append: recorded as not applied",
				"id", r.ID, "error", err)
			return Revalidation{}, false
		case <-time.After(200 * time.Millisecond):
		}
	}
}
