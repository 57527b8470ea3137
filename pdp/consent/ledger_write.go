package consent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// maxSkew is how far in the future a choice's time may lie (clocks of the
// calling applications drift).
const maxSkew = 5 * time.Minute

// ChoiceRequest gives or refuses consent. See DecodeChoice for its JSON.
type ChoiceRequest struct {
	// Application is the caller, from its credential (set by the HTTP
	// layer, never by the body).
	Application string
	// Subject is the data subject; Actor who acts (zero: the subject). A
	// representative (Actor != Subject) names the Delegation they act
	// under.
	Subject, Actor Ref
	Delegation     string
	Purpose        string
	// Applications the grant covers; default [Application]. Each must be
	// one the purpose may be processed by.
	Applications []string
	Jurisdiction string
	// Notice the choice was made on; uri and version are required to give.
	Notice            Notice
	Channel, Evidence string
	// At is when the choice was made; zero: now.
	At time.Time
	// Expires ends a grant; default At + the rule's max_validity (none
	// without one). A refusal has none.
	Expires *time.Time
}

// WithdrawRequest ends grants: one (GrantID), every grant of a purpose
// (Purpose), or every grant of every purpose (All). See DecodeWithdraw.
type WithdrawRequest struct {
	Application    string
	Subject, Actor Ref
	Delegation     string
	Purpose        string
	GrantID        string
	All            bool
	Reason         string
	// Revoke: someone other than the subject or their representative ends
	// the grant (the controller, a court): recorded as revoked, with a
	// required Reason; Actor defaults to the calling application.
	Revoke bool
}

// RenewRequest confirms a grant again, on a notice, with a new expiry
// (default now + max_validity, or the grant's expiry without one).
type RenewRequest struct {
	Application       string
	Subject, Actor    Ref
	Delegation        string
	GrantID           string
	Notice            Notice
	Expires           *time.Time
	Channel, Evidence string
}

// Give records a grant (its GrantID is the event's id) and returns the
// stored event and its signed receipt.
func (l *Ledger) Give(ctx context.Context, r ChoiceRequest) (Event, string, error) {
	publish := l.publishing(ctx, "consent.give") // before the change
	ev, receipt, err := l.choice(ctx, EventGiven, r)
	return ev, receipt, publish(err == nil || ev.ID != "", err)
}

// Refuse records a refusal (in an opt-out jurisdiction: the opt-out).
func (l *Ledger) Refuse(ctx context.Context, r ChoiceRequest) (Event, string, error) {
	publish := l.publishing(ctx, "consent.refuse") // before the change
	ev, receipt, err := l.choice(ctx, EventRefused, r)
	return ev, receipt, publish(err == nil || ev.ID != "", err)
}

func (l *Ledger) choice(ctx context.Context, typ EventType, r ChoiceRequest) (Event, string, error) {
	reg, err := l.writable()
	if err != nil {
		return Event{}, "", err
	}
	now := l.clock()
	at := now
	if !r.At.IsZero() {
		at = storedTime(r.At)
	}
	if at.After(now.Add(maxSkew)) {
		return Event{}, "", invalid("at %s is in the future", at.Format(time.RFC3339))
	}
	if err := l.checkCaller(r.Application, r.Subject, r.Actor); err != nil {
		return Event{}, "", err
	}
	p, err := purposeFor(reg, r.Application, r.Purpose)
	if err != nil {
		return Event{}, "", err
	}
	apps, err := applicationsFor(p, r.Applications, r.Application)
	if err != nil {
		return Event{}, "", err
	}
	rule, err := consentRule(p, r.Jurisdiction, typ)
	if err != nil {
		return Event{}, "", err
	}
	e := Event{
		Type: typ, Subject: r.Subject, Delegation: r.Delegation, Application: r.Application,
		Purpose: p.ID, PurposeVersion: p.Version, Applications: apps, Jurisdiction: r.Jurisdiction,
		Notice: r.Notice, Channel: r.Channel, Evidence: r.Evidence, At: at,
	}
	if typ == EventGiven {
		if e.Expires, err = expiresFor(rule, at, r.Expires, nil); err != nil {
			return Event{}, "", err
		}
		if err := checkNotice(p, r.Notice); err != nil {
			return Event{}, "", err
		}
	} else if r.Expires != nil {
		return Event{}, "", invalid("expires applies to a grant; a refusal stands until the subject changes it")
	}
	if e.Actor, err = l.checkActor(ctx, r.Application, r.Subject, r.Actor, r.Delegation, at); err != nil {
		return Event{}, "", err
	}
	if err := l.withinMandate(ctx, r.Subject, e.Actor, r.Delegation, at, p); err != nil {
		return Event{}, "", err
	}
	e.ID = l.newID()
	if typ == EventGiven {
		e.GrantID = e.ID
	}
	l.wmu.Lock()
	stored, err := l.writeJournaled(ctx, "consent."+choiceVerb[typ], r.Application, []Event{e})
	l.wmu.Unlock()
	if err != nil {
		return Event{}, "", err
	}
	receipt, err := l.sign(stored[0])
	return stored[0], receipt, err
}

// choiceVerb names the journal action of a choice.
var choiceVerb = map[EventType]string{EventGiven: "give", EventRefused: "refuse"}

// Withdraw ends grants and returns one event per purpose affected, each
// durable and in the index (their positions are the tokens for CheckAt).
// If an append fails after others succeeded, it returns those with the
// error. A withdrawal may come through any application (it processes
// nothing); a revocation only through one that may process for each
// purpose it ends (403 otherwise).
func (l *Ledger) Withdraw(ctx context.Context, r WithdrawRequest) ([]Event, error) {
	publish := l.publishing(ctx, "consent.withdraw") // before the change
	evs, err := l.withdraw(ctx, r)
	if len(evs) > 0 && l.notify != nil {
		l.notify.ConsentChanged(ctx, Change{Action: "consent.withdraw", Application: r.Application, Events: evs})
	}
	return evs, publish(err == nil || len(evs) > 0, err)
}

func (l *Ledger) withdraw(ctx context.Context, r WithdrawRequest) ([]Event, error) {
	reg, err := l.writable()
	if err != nil {
		return nil, err
	}
	switch {
	case r.All && (r.Purpose != "" || r.GrantID != ""):
		return nil, invalid("all ends every purpose: leave purpose and grant_id out")
	case !r.All && r.Purpose == "" && r.GrantID == "":
		return nil, invalid("name what to withdraw: a grant_id, a purpose, or all")
	}
	if err := l.checkCaller(r.Application, r.Subject, r.Actor); err != nil {
		return nil, err
	}
	now := l.clock()
	typ, actor := EventWithdrawn, r.Actor
	if r.Revoke {
		typ = EventRevoked
		if actor == (Ref{}) {
			actor = Ref{Type: "application", ID: r.Application}
		}
		switch {
		case actor == r.Subject:
			return nil, invalid("the subject withdraws; revoke is for someone else ending the grant")
		case strings.TrimSpace(r.Reason) == "":
			return nil, invalid("a revocation needs a reason")
		}
		if err := l.proveActor(ctx, r.Application, actor); err != nil {
			return nil, err
		}
	} else if actor, err = l.checkActor(ctx, r.Application, r.Subject, r.Actor, r.Delegation, now); err != nil {
		return nil, err
	}

	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.syncForWrite(ctx); err != nil {
		return nil, err
	}
	v := fold(l.indexed(r.Subject))
	type target struct {
		purpose Purpose
		grantID string
		last    *grantRec // the latest grant in force: its jurisdiction
	}
	// A revocation needs an application that may process for the purpose.
	// A withdrawal is the subject's right (GDPR Art. 7(3)): any
	// application may carry it, and it ends grants of a purpose the
	// registry no longer has as well.
	endable := func(id string, g *grantRec) (Purpose, error) {
		if r.Revoke {
			return purposeFor(reg, r.Application, id)
		}
		if p, ok := reg.Purpose(id); ok {
			return p, nil
		}
		if g != nil {
			return Purpose{ID: id, Version: g.g.PurposeVersion}, nil
		}
		return Purpose{}, ruleErr(CodeUnknownPurpose, "unknown purpose %q (purposes registry %s)", id, reg.Version)
	}
	var targets []target
	switch {
	case r.GrantID != "":
		g := v.byID[r.GrantID]
		if g == nil {
			return nil, ruleErr(CodeNotFound, "%s has no grant %s", r.Subject, r.GrantID)
		}
		if r.Purpose != "" && r.Purpose != g.g.Purpose {
			return nil, invalid("grant %s is for purpose %q, not %q", r.GrantID, g.g.Purpose, r.Purpose)
		}
		p, err := endable(g.g.Purpose, g)
		if err != nil {
			return nil, err
		}
		if why, ended := g.ended(now); ended {
			return nil, ruleErr(CodeEnded, "grant %s has already ended: %s", r.GrantID, why)
		}
		targets = append(targets, target{p, r.GrantID, g})
	default:
		byPurpose := map[string]*grantRec{}
		var order []string
		for _, g := range v.order {
			if _, ended := g.ended(now); ended || (r.Purpose != "" && g.g.Purpose != r.Purpose) {
				continue
			}
			if _, seen := byPurpose[g.g.Purpose]; !seen {
				order = append(order, g.g.Purpose)
			}
			byPurpose[g.g.Purpose] = g
		}
		if r.Purpose != "" {
			if _, err := endable(r.Purpose, byPurpose[r.Purpose]); err != nil {
				return nil, err
			}
		}
		if len(order) == 0 {
			what := "no grant"
			if r.Purpose != "" {
				what = fmt.Sprintf("no grant of purpose %q", r.Purpose)
			}
			return nil, ruleErr(CodeEnded, "%s is in force for %s: nothing to withdraw (an opt-out is a refusal)", what, r.Subject)
		}
		for _, id := range order {
			p, err := endable(id, byPurpose[id])
			if err != nil {
				return nil, err
			}
			targets = append(targets, target{p, "", byPurpose[id]})
		}
	}
	if !r.Revoke {
		for _, t := range targets {
			if err := l.withinMandate(ctx, r.Subject, actor, r.Delegation, now, t.purpose); err != nil {
				return nil, err
			}
		}
	}
	var out []Event
	for _, t := range targets {
		e := Event{
			ID: l.newID(), Type: typ, GrantID: t.grantID, Subject: r.Subject, Actor: actor,
			Delegation: r.Delegation, Application: r.Application, Purpose: t.purpose.ID,
			PurposeVersion: t.purpose.Version, Jurisdiction: t.last.g.Jurisdiction, Reason: r.Reason, At: now,
		}
		out = append(out, e) // recorded together, then appended one by one
	}
	return l.writeJournaled(ctx, "consent.withdraw", r.Application, out)
}

// Renew confirms a grant that is in force again: a renewed event with the
// notice and the new expiry, and its receipt.
func (l *Ledger) Renew(ctx context.Context, r RenewRequest) (Event, string, error) {
	publish := l.publishing(ctx, "consent.renew") // before the change
	ev, receipt, err := l.renew(ctx, r)
	return ev, receipt, publish(err == nil || ev.ID != "", err)
}

func (l *Ledger) renew(ctx context.Context, r RenewRequest) (Event, string, error) {
	reg, err := l.writable()
	if err != nil {
		return Event{}, "", err
	}
	if err := l.checkCaller(r.Application, r.Subject, r.Actor); err != nil {
		return Event{}, "", err
	}
	if r.GrantID == "" {
		return Event{}, "", invalid("grant_id is required")
	}
	now := l.clock()
	actor, err := l.checkActor(ctx, r.Application, r.Subject, r.Actor, r.Delegation, now)
	if err != nil {
		return Event{}, "", err
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.syncForWrite(ctx); err != nil {
		return Event{}, "", err
	}
	g := fold(l.indexed(r.Subject)).byID[r.GrantID]
	if g == nil {
		return Event{}, "", ruleErr(CodeNotFound, "%s has no grant %s", r.Subject, r.GrantID)
	}
	if why, ended := g.ended(now); ended {
		return Event{}, "", ruleErr(CodeEnded, "grant %s has already ended: %s; give consent anew", r.GrantID, why)
	}
	p, err := purposeFor(reg, r.Application, g.g.Purpose)
	if err != nil {
		return Event{}, "", err
	}
	if err := l.withinMandate(ctx, r.Subject, actor, r.Delegation, now, p); err != nil {
		return Event{}, "", err
	}
	rule, err := consentRule(p, g.g.Jurisdiction, EventRenewed)
	if err != nil {
		return Event{}, "", err
	}
	expires, err := expiresFor(rule, now, r.Expires, g.g.Expires)
	if err != nil {
		return Event{}, "", err
	}
	if err := checkNotice(p, r.Notice); err != nil {
		return Event{}, "", err
	}
	e := Event{
		ID: l.newID(), Type: EventRenewed, GrantID: r.GrantID, Subject: r.Subject, Actor: actor,
		Delegation: r.Delegation, Application: r.Application, Purpose: p.ID, PurposeVersion: p.Version,
		Applications: slices.Clone(g.g.Applications), Jurisdiction: g.g.Jurisdiction, Notice: r.Notice,
		Channel: r.Channel, Evidence: r.Evidence, At: now, Expires: expires,
	}
	stored, err := l.writeJournaled(ctx, "consent.renew", r.Application, []Event{e})
	if err != nil {
		return Event{}, "", err
	}
	receipt, err := l.sign(stored[0])
	return stored[0], receipt, err
}

// Import seeds the ledger: it appends, in order, the events whose ids are
// not stored yet, keeping their At and RecordedAt (RecordedAt defaults to
// At). Positions are the ledger's. The events are not checked against the
// registry: a seed is history, not a request.
func (l *Ledger) Import(ctx context.Context, events []Event) error {
	if _, err := l.writable(); err != nil && !errors.Is(err, ErrNoRegistry) {
		return err
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	for i, e := range events {
		if err := checkStorable(e); err != nil {
			return fmt.Errorf("consent: import event %d: %w", i, err)
		}
		switch e.Type {
		case EventGiven, EventRefused, EventWithdrawn, EventRevoked, EventRenewed:
		default:
			return fmt.Errorf("consent: import event %s: unknown type %q", e.ID, e.Type)
		}
		if _, err := l.store.Event(ctx, e.ID); err == nil {
			continue
		} else if !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("consent: import event %s: %w", e.ID, err)
		}
		e = cloneEvent(e)
		if e.At.IsZero() {
			e.At = e.RecordedAt
		}
		if e.At.IsZero() {
			e.At = l.clock()
		}
		if e.RecordedAt.IsZero() {
			e.RecordedAt = e.At
		}
		if e.Actor == (Ref{}) {
			e.Actor = e.Subject
		}
		if e.Type == EventGiven && e.GrantID == "" {
			e.GrantID = e.ID
		}
		stored, err := l.store.Append(ctx, e)
		if err != nil {
			return fmt.Errorf("consent: import event %s: %w", e.ID, err)
		}
		l.index(ctx, stored)
	}
	return nil
}

// ImportActivity seeds last activity: subject ("type:id", or a user's id)
// → time. It is written to the store at once.
func (l *Ledger) ImportActivity(ctx context.Context, activity map[string]time.Time) error {
	for k, at := range activity {
		ref, err := ParseRef(k)
		if err != nil {
			return err
		}
		if err := l.store.SetActivity(ctx, ref, at); err != nil {
			return err
		}
		at = storedTime(at)
		l.amu.Lock()
		if cur, ok := l.active[ref]; !ok || at.After(cur) {
			l.active[ref] = at
		}
		l.amu.Unlock()
	}
	if f, ok := l.store.(activityFlusher); ok {
		return f.FlushActivity()
	}
	return nil
}

func (l *Ledger) writable() (*Registry, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	reg := l.registry()
	if reg == nil {
		return nil, ErrNoRegistry
	}
	return reg, nil
}

// syncForWrite catches up with a shared store, so that a write is checked
// against the latest state known (l.wmu held).
func (l *Ledger) syncForWrite(ctx context.Context) error {
	if l.excl {
		return nil
	}
	if err := l.catchUp(ctx, true); err != nil {
		return fmt.Errorf("consent: catch up with the ledger: %w", err)
	}
	return nil
}

// write appends e (l.wmu held; RecordedAt stamped by writeJournaled) and
// indexes it.
func (l *Ledger) write(ctx context.Context, e Event) (Event, error) {
	if l.closed.Load() {
		return Event{}, ErrClosed
	}
	stored, err := l.store.Append(ctx, e)
	if err != nil {
		return Event{}, err
	}
	l.index(ctx, stored)
	l.log.Info("consent event", "id", stored.ID, "type", string(stored.Type), "position", stored.Position,
		"subject", stored.Subject.String(), "purpose", stored.Purpose, "grant", stored.GrantID,
		"application", stored.Application)
	return stored, nil
}

// index puts the ledger's own write in the index at once; with a shared
// store it then catches up, so that the head passes it (when that fails the
// next Check does it).
func (l *Ledger) index(ctx context.Context, e Event) {
	l.mu.Lock()
	l.applyLocked(e, true)
	if l.excl && e.Position > l.head.Load() {
		l.head.Store(e.Position)
	}
	l.mu.Unlock()
	if !l.excl {
		if err := l.catchUp(ctx, true); err != nil {
			l.log.Warn("consent: catch up after a write", "position", e.Position, "err", err)
		}
	}
}

func (l *Ledger) sign(e Event) (string, error) {
	jws, err := SignReceipt(l.key, l.kid, NewReceipt(e, l.controller, l.pub))
	if err != nil {
		return "", fmt.Errorf("consent: sign receipt of %s: %w", e.ID, err)
	}
	return jws, nil
}
