package delegation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// transition is one change of status: from which stored statuses, to
// which, and who may make it.
type transition struct {
	verb  string // "accept"
	event string
	from  []Status
	to    Status
	// may says whether by may make the change to d (parent is d's parent,
	// nil when it has none or it is missing; register says whether by's
	// application speaks for a register).
	may func(d, parent *Delegation, by Actor, register bool) bool
	// who describes may for the error message.
	who string
}

// byRegisterOnly reports whether only a register may change d: a statutory
// guardian or legal representative recorded by a register ends, pauses or
// resumes by the register's word alone — not by the ward's, the
// company's or an application's.
func byRegisterOnly(d *Delegation) bool { return d.Source == SourceRegister && d.Basis.statutory() }

// isAgent: the agent, whatever the source: giving up one's own power
// (accepting it, or renouncing it, even a statutory one) is the agent's
// own act.
func isAgent(d, _ *Delegation, by Actor, _ bool) bool { return by.Subject == d.Agent }

// isPrincipalSide: the principal, or the parent's agent for a
// sub-delegation; for a register-sourced record also a register
// application, and for a statutory one only that.
func isPrincipalSide(d, parent *Delegation, by Actor, register bool) bool {
	if byRegisterOnly(d) {
		return register
	}
	return by.Subject == d.Principal || (d.Source == SourceRegister && register) ||
		(parent != nil && by.Subject == parent.Agent)
}

const principalSide = "the principal, the parent's agent or, for a register-sourced delegation, a register application (only a register application for a statutory guardian or legal representative)"

var (
	accept = transition{
		verb: "accept", event: EventAccepted, from: []Status{StatusOffered}, to: StatusActive,
		may: isAgent, who: "the agent",
	}
	revoke = transition{
		verb: "revoke", event: EventRevoked, to: StatusRevoked,
		from: []Status{StatusOffered, StatusActive, StatusSuspended},
		may:  isPrincipalSide, who: principalSide,
	}
	renounce = transition{
		verb: "renounce", event: EventRenounced, to: StatusRenounced,
		from: []Status{StatusOffered, StatusActive, StatusSuspended},
		may:  isAgent, who: "the agent",
	}
	suspend = transition{
		verb: "suspend", event: EventSuspended, from: []Status{StatusActive}, to: StatusSuspended,
		may: isPrincipalSide, who: principalSide,
	}
	resume = transition{
		verb: "resume", event: EventResumed, from: []Status{StatusSuspended}, to: StatusActive,
		may: isPrincipalSide, who: principalSide,
	}
)

// Accept activates an offered delegation; only its agent may, and only
// before its window ends.
func (s *Service) Accept(ctx context.Context, id string, by Actor) (Delegation, string, error) {
	return s.apply(ctx, accept, id, by, "")
}

// Revoke ends a delegation (offered, active or suspended) and every
// delegation sub-delegated from it, at any depth. The principal may, the
// parent's agent for a sub-delegation, and a register application for a
// record a register made; a statutory guardian or legal representative
// recorded by a register only a register application may.
func (s *Service) Revoke(ctx context.Context, id string, by Actor, reason string) (Delegation, string, error) {
	return s.apply(ctx, revoke, id, by, reason)
}

// Renounce is the agent giving up (or declining) a delegation. Its
// descendants are revoked.
func (s *Service) Renounce(ctx context.Context, id string, by Actor, reason string) (Delegation, string, error) {
	return s.apply(ctx, renounce, id, by, reason)
}

// Suspend pauses an active delegation. Its descendants keep their stored
// status, but Resolve reports them suspended and they leave the
// relationship store until Resume.
func (s *Service) Suspend(ctx context.Context, id string, by Actor, reason string) (Delegation, string, error) {
	return s.apply(ctx, suspend, id, by, reason)
}

// Resume reactivates a suspended delegation (same actors as Suspend).
func (s *Service) Resume(ctx context.Context, id string, by Actor) (Delegation, string, error) {
	return s.apply(ctx, resume, id, by, "")
}

// apply makes the transition t and publishes it when it was stored.
func (s *Service) apply(ctx context.Context, t transition, id string, by Actor, reason string) (Delegation, string, error) {
	publish := s.published(ctx, "delegation."+t.verb) // before the change
	d, token, err := s.applyOnce(ctx, t, id, by, reason)
	if d.ID != "" && s.notify != nil {
		s.notify.DelegationChanged(ctx, Change{Action: "delegation." + t.verb, By: by, Reason: reason, Delegation: d})
	}
	return publish(d, token, err)
}

func (s *Service) applyOnce(ctx context.Context, t transition, id string, by Actor, reason string) (Delegation, string, error) {
	if by.Application == "" {
		return Delegation{}, "", invalid("by.application is required")
	}
	if err := checkRef("by.subject", by.Subject); err != nil {
		return Delegation{}, "", err
	}
	if err := s.proveActor(ctx, by); err != nil {
		return Delegation{}, "", err
	}
	now := s.clock()
	record := func(d Delegation) (Change, error) {
		c := Change{Action: "delegation." + t.verb, By: by, Reason: reason, Delegation: d}
		return c, s.journal(ctx, c)
	}
	// One journalled change at a time in this process: check, record and
	// store never lose a race (a cascade and the projection follow
	// outside the lock).
	s.wmu.Lock()
	d, err := s.change(ctx, id, func(d *Delegation) error {
		var parent *Delegation
		if d.Parent != "" {
			p, err := s.store.Get(ctx, d.Parent)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			if err == nil {
				parent = &p
			}
		}
		if !t.may(d, parent, by, s.registers[by.Application]) {
			if s.Hides(by, *d, parent) {
				return notFound(id) // exactly as an id that does not exist
			}
			return forbidden("%s may not %s delegation %s: only %s may", by.Subject, t.verb, d.ID, t.who)
		}
		if !slices.Contains(t.from, d.Status) {
			return ruleErr(CodeInvalidTransition, "cannot %s delegation %s: it is %s, and only a delegation that is %s can be",
				t.verb, d.ID, d.Status, orList(t.from))
		}
		if t.event == EventAccepted && !now.Before(d.ValidUntil) {
			return ruleErr(CodeInvalidTransition, "cannot accept delegation %s: its window ended at %s", d.ID, stamp(d.ValidUntil))
		}
		d.addEvent(t.event, now, by, reason, t.to)
		if t.event == EventAccepted {
			d.AcceptedAt = &now
		}
		return nil
	}, record)
	s.wmu.Unlock()
	if err != nil {
		return Delegation{}, "", err
	}
	s.log.InfoContext(ctx, "delegation "+t.event, "id", d.ID, "status", d.Status, "by", by.Subject.String(),
		"application", by.Application, "reason", reason)
	token, perr := s.project(ctx, d)
	errs := []error{perr}
	var tok string
	switch t.event {
	case EventRevoked, EventRenounced:
		tok, err = s.cascade(ctx, d, by, now)
	case EventSuspended, EventResumed:
		tok, err = s.reprojectDescendants(ctx, d)
	}
	if tok != "" {
		token = tok
	}
	errs = append(errs, err)
	return d, token, errors.Join(errs...)
}

func orList(ss []Status) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	if len(out) == 1 {
		return out[0]
	}
	return strings.Join(out[:len(out)-1], ", ") + " or " + out[len(out)-1]
}

// descendants walks the sub-delegations of root, breadth first, calling
// visit with each and its parent; visit returns the record to descend
// into. It stops at nothing: errors are collected.
func (s *Service) descendants(ctx context.Context, root Delegation, visit func(d, parent Delegation) (Delegation, error)) error {
	var errs []error
	queue := []Delegation{root}
	seen := map[string]bool{root.ID: true}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		kids, err := s.store.List(ctx, Filter{Parent: p.ID})
		if err != nil {
			errs = append(errs, fmt.Errorf("list sub-delegations of %s: %w", p.ID, err))
			continue
		}
		for _, k := range kids {
			if seen[k.ID] {
				continue
			}
			seen[k.ID] = true
			next, err := visit(k, p)
			errs = append(errs, err)
			queue = append(queue, next)
		}
	}
	return errors.Join(errs...)
}

// cascade revokes every descendant of root that has not ended, with the
// reason "parent <id> revoked" (or renounced), each stored and projected.
func (s *Service) cascade(ctx context.Context, root Delegation, by Actor, now time.Time) (string, error) {
	var token string
	err := s.descendants(ctx, root, func(k, p Delegation) (Delegation, error) {
		if k.Status.ended() {
			return k, nil
		}
		reason := fmt.Sprintf("parent %s %s", p.ID, p.Status)
		d, err := s.change(ctx, k.ID, func(d *Delegation) error {
			if !d.Status.ended() {
				d.addCascade(now, by, reason)
			}
			return nil
		}, nil)
		if err != nil {
			return k, fmt.Errorf("delegation %s ended, but revoking its descendant %s failed (Reconcile completes it): %w",
				root.ID, k.ID, err)
		}
		s.log.InfoContext(ctx, "delegation revoked", "id", d.ID, "reason", reason)
		tok, err := s.project(ctx, d)
		if tok != "" {
			token = tok
		}
		return d, err
	})
	return token, err
}

// reprojectDescendants projects every descendant again (after a suspend or
// resume of an ancestor).
func (s *Service) reprojectDescendants(ctx context.Context, root Delegation) (string, error) {
	if s.proj == nil {
		return "", nil
	}
	var token string
	err := s.descendants(ctx, root, func(k, _ Delegation) (Delegation, error) {
		tok, err := s.project(ctx, k)
		if tok != "" {
			token = tok
		}
		return k, err
	})
	return token, err
}

// reconcileActor is recorded on the revocations Reconcile completes.
var reconcileActor = Actor{Application: "pdp-reconcile"}

// Import stores records as given (with their history) whose id is absent,
// then projects them: for seeding and bootstrap. Every record is checked
// for shape first, and nothing is stored when one fails. Records whose id
// exists are left alone. Version 0 is stored as 1 and a zero CreatedAt as
// now; the rules of Offer (who, parent bounds) are not applied.
func (s *Service) Import(ctx context.Context, ds []Delegation) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	now := s.clock()
	recs := make([]Delegation, 0, len(ds))
	var errs []error
	for i, d := range ds {
		d = d.Clone()
		d.normalize()
		if d.Version < 1 {
			d.Version = 1
		}
		if d.CreatedAt.IsZero() {
			d.CreatedAt = now
		}
		if err := d.validateRecord(); err != nil {
			errs = append(errs, fmt.Errorf("import record %d: %w", i, err))
		}
		recs = append(recs, d)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	var created []Delegation
	for _, d := range recs {
		_, err := s.store.Get(ctx, d.ID)
		if err == nil {
			continue
		}
		if errors.Is(err, ErrNotFound) {
			err = s.store.Create(ctx, d)
		}
		switch {
		case err == nil:
			created = append(created, d)
		case !errors.Is(err, ErrExists):
			errs = append(errs, fmt.Errorf("import %s: %w", d.ID, err))
		}
	}
	for _, d := range created {
		if _, err := s.project(ctx, d); err != nil {
			errs = append(errs, err)
		}
	}
	s.log.InfoContext(ctx, "delegations imported", "given", len(ds), "stored", len(created))
	return errors.Join(errs...)
}

// Reconcile brings everything derived in line with the records: it revokes
// what a failed cascade left behind (a record whose ancestor has ended or is
// missing) and projects every record again. It returns how many records
// were projected. Run it at start and after an ErrProjection.
func (s *Service) Reconcile(ctx context.Context) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	all, err := s.store.List(ctx, Filter{})
	if err != nil {
		return 0, err
	}
	now := s.clock()
	var (
		errs []error
		n    int
	)
	for _, d := range all {
		if d.Parent != "" && !d.Status.ended() {
			if reason := s.endedAncestor(ctx, d); reason != "" {
				revoked, err := s.change(ctx, d.ID, func(r *Delegation) error {
					if !r.Status.ended() {
						r.addCascade(now, reconcileActor, reason)
					}
					return nil
				}, nil)
				if err != nil {
					errs = append(errs, fmt.Errorf("reconcile %s: %w", d.ID, err))
					continue
				}
				d = revoked
				s.log.InfoContext(ctx, "delegation revoked by reconcile", "id", d.ID, "reason", reason)
			}
		}
		if s.proj == nil {
			continue
		}
		if _, err := s.project(ctx, d); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	s.log.InfoContext(ctx, "delegations reconciled", "records", len(all), "projected", n, "failed", len(errs))
	return n, errors.Join(errs...)
}

// endedAncestor returns why d must be revoked: "parent <id> revoked" for
// the nearest ancestor that ended (or is missing), or "".
func (s *Service) endedAncestor(ctx context.Context, d Delegation) string {
	anc, err := s.ancestors(ctx, d)
	for i, a := range anc {
		if a.Status.ended() {
			if i == 0 {
				return fmt.Sprintf("parent %s %s", a.ID, a.Status)
			}
			return fmt.Sprintf("ancestor %s %s", a.ID, a.Status)
		}
	}
	if errors.Is(err, ErrNotFound) {
		return "an ancestor of " + d.ID + " is missing"
	}
	return ""
}
