package delegation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/ciampdp/pdp/pdp/changefeed"
)

// Projector makes a relationship store reflect delegation records.
type Projector interface {
	// Project writes d's relationships when d is in force (see
	// SpiceDBProjector for the exact rule) and deletes them otherwise. It
	// returns the relationship store's revision token after the write, ""
	// if nothing was written. The Service passes a sub-delegation whose
	// ancestor is not active with that ancestor's status, so that it is
	// taken out of the relationship store while its ancestor is suspended.
	Project(ctx context.Context, d Delegation) (string, error)
}

// Config wires a Service.
type Config struct {
	// Store keeps the records; required.
	Store Store
	// Projector, when not nil, is told of every change.
	Projector Projector
	// Journal, when not nil, records every change before it is applied
	// (see Journal).
	Journal Journal
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default discards.
	Logger *slog.Logger
	// NewID makes the id of an offer that has none; default "dlg-" and a
	// UUIDv7.
	NewID func() string
	// RegisterApplications are the applications that speak for a public
	// register (civil register, commercial register): only they may offer
	// a register-sourced delegation, and only they may revoke, suspend,
	// resume or renounce one that is statutory (see the rules in
	// lifecycle.go). None by default.
	RegisterApplications []string
	// ReaderApplications read every delegation record (GetFor, ListFor:
	// auditors, back office); any other application reads those it took
	// part in (see Reader). None by default.
	ReaderApplications []string
	// Actors, when not nil, proves that the actor of every change is who
	// the calling application says (see ActorProver); nil trusts the
	// application.
	Actors ActorProver
	// Vocabulary, when not nil, is the active schema's: offers may only
	// name its types and actions.
	Vocabulary Vocabulary
	// Publisher, when not nil, is told of every change that was stored
	// (see Publisher), whoever made it.
	Publisher Publisher
	// Notifier, when not nil, is told of every change a caller made (not
	// the revocations of sub-delegations it derives), after it was stored.
	Notifier Notifier
}

// Notifier is told of a change after it was stored (the outgoing risk
// signals queue it); it must return quickly and not fail the change.
type Notifier interface {
	DelegationChanged(ctx context.Context, c Change)
}

// Publisher is told of a change (reason: delegation.offer,
// delegation.revoke, …) after it was stored and before the method that
// made it returns; it may wait (the sidecars' change feed waits until no
// sidecar serves an answer cached before the change). An error is logged:
// the change stands.
type Publisher interface {
	Publish(ctx context.Context, reason string) (uint64, error)
}

// Service applies the rules of delegations: every change is checked,
// recorded as an event, stored with optimistic concurrency and projected.
//
// Every method that changes a record returns the record after the change
// and the newest revision token of the relationship store. When it returns
// an error together with a record (ID set), the change itself was stored:
// the error wraps ErrProjection when only the projection failed, or says
// which descendant could not be revoked. Reconcile repairs both.
type Service struct {
	store     Store
	proj      Projector
	now       func() time.Time
	log       *slog.Logger
	newID     func() string
	registers map[string]bool
	readers   map[string]bool // the whole view (Config.ReaderApplications)
	actors    ActorProver
	jrn       Journal
	notify    Notifier
	vocab     Vocabulary
	pub       Publisher
	// wmu makes check, record and store one step per status change in
	// this process, so that a journalled change never loses a race to
	// another (an offer needs none: Create races on the id alone).
	wmu sync.Mutex
}

// NewService returns a Service. It panics without a Store.
func NewService(c Config) *Service {
	if c.Store == nil {
		panic("delegation: NewService without a Store")
	}
	s := &Service{store: c.Store, proj: c.Projector, now: c.Now, log: c.Logger, newID: c.NewID,
		registers: map[string]bool{}, readers: map[string]bool{}, actors: c.Actors, vocab: c.Vocabulary, pub: c.Publisher}
	for _, app := range c.RegisterApplications {
		s.registers[app] = true
	}
	for _, app := range c.ReaderApplications {
		s.readers[app] = true
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.newID == nil {
		s.newID = func() string { return "dlg-" + uuid.Must(uuid.NewV7()).String() }
	}
	s.jrn = c.Journal
	s.notify = c.Notifier
	return s
}

// published returns a pass-through of a change method's results that
// publishes the change when it was stored (a record is returned, even with
// an error: see Service). Call it before the change: with an outbox
// (changefeed.Outbox) it records the change as coming first, so that
// another replica publishes it if this process dies in between.
func (s *Service) published(ctx context.Context, reason string) func(Delegation, string, error) (Delegation, string, error) {
	finish, berr := changefeed.Begin(ctx, s.pub, reason)
	if berr != nil {
		s.log.WarnContext(ctx, "change feed: publishing the change after it is made only", "reason", reason, "error", berr.Error())
	}
	return func(d Delegation, token string, err error) (Delegation, string, error) {
		if _, perr := finish(ctx, d.ID != ""); perr != nil {
			s.log.WarnContext(ctx, "change not acknowledged by every sidecar; their leases bound it",
				"reason", reason, "id", d.ID, "error", perr.Error())
		}
		return d, token, err
	}
}

// clock is now in UTC, without the monotonic reading, as stored.
func (s *Service) clock() time.Time { return s.now().UTC().Round(0) }

// OfferRequest asks for a new delegation. See DecodeOffer for its JSON.
type OfferRequest struct {
	// ID is optional; the Service makes one when it is empty.
	ID          string      `json:"id,omitempty"`
	By          Actor       `json:"by"`
	Principal   Ref         `json:"principal"`
	Agent       Ref         `json:"agent"`
	Basis       Basis       `json:"basis"`
	Source      Source      `json:"source"`
	Scope       []string    `json:"scope"`
	Resources   []Ref       `json:"resources,omitempty"`
	Constraints Constraints `json:"constraints,omitzero"`
	// ValidFrom zero means now.
	ValidFrom  time.Time `json:"valid_from,omitzero"`
	ValidUntil time.Time `json:"valid_until,omitzero"`
	MaxDepth   int       `json:"max_depth,omitempty"`
	Parent     string    `json:"parent,omitempty"`
}

// Offer records a new delegation. It is active at once when a register
// records a statutory guardian or legal representative; otherwise it is
// offered until the agent accepts it. Who may offer: the principal, a
// register application (Source register: only one of
// Config.RegisterApplications may claim that), or for a sub-delegation the
// agent of the parent.
func (s *Service) Offer(ctx context.Context, r OfferRequest) (Delegation, string, error) {
	publish := s.published(ctx, "delegation.offer") // before the change
	return publish(s.offer(ctx, r))
}

func (s *Service) offer(ctx context.Context, r OfferRequest) (Delegation, string, error) {
	now := s.clock()
	d := Delegation{
		ID: r.ID, Principal: r.Principal, Agent: r.Agent, Basis: r.Basis, Source: r.Source,
		Scope: r.Scope, Resources: r.Resources, Constraints: r.Constraints,
		ValidFrom: r.ValidFrom, ValidUntil: r.ValidUntil, MaxDepth: r.MaxDepth, Parent: r.Parent,
		CreatedBy: r.By, CreatedAt: now, Version: 1,
	}
	d = d.Clone()
	if d.ValidFrom.IsZero() {
		d.ValidFrom = now
	}
	d.normalize()
	if d.ID != "" && !validID(d.ID) {
		return Delegation{}, "", invalid("id %q has characters other than a-z A-Z 0-9 / _ | - = +", d.ID)
	}
	if r.By.Application == "" {
		return Delegation{}, "", invalid("by.application is required")
	}
	if err := checkRef("by.subject", r.By.Subject); err != nil {
		return Delegation{}, "", err
	}
	if err := d.validateShape(); err != nil {
		return Delegation{}, "", err
	}
	if err := s.proveActor(ctx, r.By); err != nil {
		return Delegation{}, "", err
	}
	if d.Source == SourceRegister && !s.registers[r.By.Application] {
		return Delegation{}, "", forbidden("application %q may not record register-sourced delegations: only a register application may (delegations.register_applications)", r.By.Application)
	}
	if d.ID != "" && !s.mayChooseID(r.By.Application) {
		return Delegation{}, "", forbidden("application %q may not choose a delegation's id: leave id out and one is made (only delegations.register_applications and delegations.reader_applications may choose one)", r.By.Application)
	}
	if err := checkVocabulary(s.vocab, &d); err != nil {
		return Delegation{}, "", err
	}
	var parent *Delegation
	if d.Parent != "" {
		p, err := s.store.Get(ctx, d.Parent)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Delegation{}, "", err
		}
		// A parent the application may not read, offered under by an
		// actor who is neither its principal nor its agent, is answered
		// as a missing one: the rules below would show its contents.
		if err != nil || s.Hides(r.By, p, nil) {
			return Delegation{}, "", invalid("parent delegation %s does not exist", d.Parent)
		}
		parent = &p
	}
	switch by := r.By.Subject; {
	case by == d.Principal, d.Source == SourceRegister:
	case parent != nil && by == parent.Agent:
	default:
		who := "only the principal " + d.Principal.String() + " or a register"
		switch {
		case parent != nil && s.Sees(Reader{Application: r.By.Application}, *parent):
			who += ", or the agent " + parent.Agent.String() + " of the parent " + parent.ID + ","
		case parent != nil: // named only to an application that may read the parent
			who += ", or the agent of the parent " + parent.ID + ","
		}
		return Delegation{}, "", forbidden("%s may not offer a delegation for %s: %s may", by, d.Principal, who)
	}
	if parent != nil {
		if err := s.checkParentInForce(ctx, *parent, now); err != nil {
			return Delegation{}, "", err
		}
		if err := checkWithinParent(&d, *parent); err != nil {
			return Delegation{}, "", err
		}
	}
	if err := checkNotOver(&d, now); err != nil {
		return Delegation{}, "", err
	}
	if d.ID == "" {
		d.ID = s.newID()
	} else if _, err := s.store.Get(ctx, d.ID); err == nil {
		// Refused before it is recorded (Create still decides a race).
		return Delegation{}, "", fmt.Errorf("delegation %s: %w", d.ID, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return Delegation{}, "", err
	}
	d.addEvent(EventOffered, now, r.By, "", StatusOffered)
	if d.Source == SourceRegister && d.Basis.statutory() {
		d.addEvent(EventActivated, now, r.By, "", StatusActive)
	}
	c := Change{Action: "delegation.offer", By: r.By, Delegation: d}
	if err := s.journal(ctx, c); err != nil {
		return Delegation{}, "", err
	}
	if err := s.store.Create(ctx, d); err != nil {
		s.notApplied(ctx, c, err)
		return Delegation{}, "", err
	}
	s.log.InfoContext(ctx, "delegation offered", "id", d.ID, "principal", d.Principal.String(),
		"agent", d.Agent.String(), "basis", d.Basis, "status", d.Status, "by", r.By.Subject.String(),
		"application", r.By.Application)
	token, err := s.project(ctx, d)
	return d, token, err
}

// checkParentInForce: the parent and all its ancestors must be in force.
func (s *Service) checkParentInForce(ctx context.Context, p Delegation, now time.Time) error {
	anc, err := s.ancestors(ctx, p)
	if errors.Is(err, ErrNotFound) {
		return ruleErr(CodeParentInactive, "parent %s cannot be sub-delegated: %v", p.ID, err)
	}
	if err != nil {
		return err
	}
	for _, a := range append([]Delegation{p}, anc...) {
		if st := a.Effective(now); st != StatusActive {
			what := "parent " + p.ID
			if a.ID != p.ID {
				what += "'s ancestor " + a.ID
			}
			return ruleErr(CodeParentInactive, "%s is %s: only a delegation in force may be sub-delegated", what, st)
		}
	}
	return nil
}

// maxChain bounds the walk up the parents.
const maxChain = 32

// ancestors returns d's ancestors, nearest first. A missing one is
// ErrNotFound (with the ancestors found so far).
func (s *Service) ancestors(ctx context.Context, d Delegation) ([]Delegation, error) {
	return ancestorsVia(ctx, d, s.store.Get)
}

// ancestorsVia is ancestors reading each parent through get.
func ancestorsVia(ctx context.Context, d Delegation, get getter) ([]Delegation, error) {
	var out []Delegation
	seen := map[string]bool{d.ID: true}
	for id := d.Parent; id != ""; {
		if seen[id] || len(out) >= maxChain {
			return out, fmt.Errorf("delegation %s: parent chain loops or is longer than %d at %s", d.ID, maxChain, id)
		}
		seen[id] = true
		p, err := get(ctx, id)
		if err != nil {
			return out, fmt.Errorf("delegation %s: ancestor: %w", d.ID, err)
		}
		out = append(out, p)
		id = p.Parent
	}
	return out, nil
}

// Get returns one record, whoever asks: for the PDP's own uses (the
// decisions, the auditor's console, reports). An application's read goes
// through GetFor.
func (s *Service) Get(ctx context.Context, id string) (Delegation, error) {
	return s.store.Get(ctx, id)
}

// List returns the records the filter matches, sorted by CreatedAt then
// ID, whoever asks (an application's read goes through ListFor).
func (s *Service) List(ctx context.Context, f Filter) ([]Delegation, error) {
	return s.store.List(ctx, f)
}

// change reads the record, applies mutate, bumps the version, passes the
// result to record (when not nil: the journal, before anything is stored)
// and stores it against the version read; on a conflict it does it all
// once more (a journalled attempt that lost is recorded as not applied).
func (s *Service) change(ctx context.Context, id string, mutate func(*Delegation) error, record func(Delegation) (Change, error)) (Delegation, error) {
	for attempt := 0; ; attempt++ {
		d, err := s.store.Get(ctx, id)
		if err != nil {
			return Delegation{}, err
		}
		prev := d.Version
		if err := mutate(&d); err != nil {
			return Delegation{}, err
		}
		d.Version = prev + 1
		var c Change
		if record != nil {
			if c, err = record(d); err != nil {
				return Delegation{}, err
			}
		}
		err = s.store.Update(ctx, d, prev)
		if err == nil {
			return d, nil
		}
		if record != nil {
			s.notApplied(ctx, c, err)
		}
		if !errors.Is(err, ErrConflict) || attempt > 0 {
			return Delegation{}, err
		}
		s.log.DebugContext(ctx, "delegation changed concurrently; retrying", "id", id)
	}
}

// project passes the record, as the relationship store should see it, to
// the projector.
func (s *Service) project(ctx context.Context, d Delegation) (string, error) {
	if s.proj == nil {
		return "", nil
	}
	v, err := s.view(ctx, d)
	if err == nil {
		var token string
		if token, err = s.proj.Project(ctx, v); err == nil {
			return token, nil
		}
	}
	s.log.WarnContext(ctx, "delegation projection failed; Reconcile repairs it", "id", d.ID, "error", err)
	return "", fmt.Errorf("%w: delegation %s: %w", ErrProjection, d.ID, err)
}

// view is d as the relationship store should see it: an active
// sub-delegation takes the status of its first ancestor that is not active
// (revoked when an ancestor is missing).
func (s *Service) view(ctx context.Context, d Delegation) (Delegation, error) {
	if d.Status != StatusActive || d.Parent == "" {
		return d, nil
	}
	anc, err := s.ancestors(ctx, d)
	if errors.Is(err, ErrNotFound) {
		d.Status = StatusRevoked
		return d, nil
	}
	if err != nil {
		return d, err
	}
	for _, a := range anc {
		if a.Status != StatusActive {
			d.Status = a.Status
			break
		}
	}
	return d, nil
}
