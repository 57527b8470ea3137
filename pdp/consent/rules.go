package consent

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/ciampdp/pdp/pdp/reason"
)

// Reason codes of a denied CheckResult: a stable contract with
// applications, which switch on them.
const (
	// ReasonConsentMissing: consent is needed (opt-in) and none was given.
	ReasonConsentMissing = reason.ConsentMissing
	// ReasonConsentWithdrawn: the grant was withdrawn or revoked, or the
	// data subject refused (in an opt-out jurisdiction: opted out).
	ReasonConsentWithdrawn = reason.ConsentWithdrawn
	// ReasonConsentExpired: the grant passed its expiry or the purpose's
	// max_validity.
	ReasonConsentExpired = reason.ConsentExpired
	// ReasonConsentInvalidMinor: the data subject was under the age of
	// consent when the grant was given, and no guardian gave it.
	ReasonConsentInvalidMinor = reason.ConsentInvalidMinor
	// ReasonRevalidationRequired: the data subject was dormant, or the
	// grant was given on a notice that has materially changed since.
	ReasonRevalidationRequired = reason.RevalidationRequired
	// ReasonPurposeNotAllowed: the purpose is unknown, the calling
	// application may not process for it, or it has no rule for the
	// jurisdiction.
	ReasonPurposeNotAllowed = reason.PurposeNotAllowed
)

// Statuses of an allowed CheckResult; a denied one has its Reason as
// Status.
const (
	// StatusGranted: a valid grant allows it.
	StatusGranted = "granted"
	// StatusNotRequired: the basis is not consent.
	StatusNotRequired = "not_required"
	// StatusOptOutDefault: no choice is recorded and the jurisdiction is
	// opt-out.
	StatusOptOutDefault = "opt_out_default"
)

// CheckQuery asks whether the calling application may process the data
// subject's data for a purpose now.
type CheckQuery struct {
	Subject     Ref    // the data subject
	Purpose     string // a purpose id of the registry
	Application string // the calling application
	// Jurisdiction is the data subject's ("" → the "*" rule).
	Jurisdiction string
	// BirthDate is the data subject's, when known (a date: its UTC
	// calendar day counts).
	BirthDate *time.Time
	Now       time.Time
}

// CheckResult is the answer to a CheckQuery.
type CheckResult struct {
	Allowed bool `json:"allowed"`
	// Status is StatusGranted, StatusNotRequired or StatusOptOutDefault
	// when allowed, else equal to Reason.
	Status string `json:"status"`
	// Reason is a Reason* code when denied, "" when allowed.
	Reason string `json:"reason,omitempty"`
	Basis  Basis  `json:"basis,omitempty"`
	// GrantID is the grant relied on (allowed) or the one that failed
	// (denied), "" if none.
	GrantID string `json:"grant_id,omitempty"`
	// Position is the highest ledger position among the events given (the
	// caller may overwrite it with the ledger's head).
	Position int64 `json:"position"`
	// Detail is one line a human can read.
	Detail string `json:"detail"`
}

// decideGrant is a grant as the events so far left it. ev is the index of
// the event that last confirmed it (given or renewed): its actor, time and
// notice are the grant's.
type decideGrant struct {
	id      string
	ev      int
	at      time.Time
	expires time.Time // zero: none
	notice  int
	ended   int  // index of the event that ended it, -1 while live
	stale   bool // it had already expired when it was ended
}

// Decide applies the registry's rules to the data subject's events for
// q.Purpose. events are all the data subject's events, in position order
// (they are sorted if not); events of other purposes are ignored, and so
// are events whose applications do not include q.Application (an empty
// list covers every application of the purpose). lastActive is when the
// data subject was last seen (zero: unknown); a grant given or renewed
// later counts as activity. guardianOK reports whether an event given by
// someone other than the data subject was given under an active statutory
// delegation (a guardian) at the event's time; nil means never.
//
// The rules, in order:
//  1. An unknown purpose, an application the purpose does not allow, or no
//     rule for the jurisdiction: purpose_not_allowed.
//  2. A basis other than consent: allowed, not_required.
//  3. Dormancy (reg.Dormancy > 0, lastActive known, Now − lastActive >
//     Dormancy): revalidation_required.
//  4. The events are replayed into grants: given creates one; renewed
//     updates its time, expiry and notice; withdrawn or revoked end the
//     grant named, or every grant when none is named; refused ends every
//     grant and records the refusal.
//  5. A live grant is valid unless expired (its expiry, or the rule's
//     max_validity since it was given or renewed: consent_expired), given
//     on a notice below the purpose's notice_min_version
//     (revalidation_required), or given while the data subject was under
//     the rule's min_age by the subject or by someone guardianOK does not
//     confirm (consent_invalid_minor). Any valid grant allows (granted);
//     otherwise the most recent failing grant's reason denies.
//  6. No live grant: the last event ended a grant or refused:
//     consent_withdrawn (consent_expired when what it ended had already
//     expired); no event: allowed (opt_out_default) under an opt-out
//     default, else consent_missing.
//
// Decide is pure: no I/O, no clock.
func Decide(reg *Registry, q CheckQuery, events []Event, lastActive time.Time, guardianOK func(Event) bool) CheckResult {
	res := CheckResult{}
	sorted := true
	for i := range events {
		res.Position = max(res.Position, events[i].Position)
		if i > 0 && events[i].Position < events[i-1].Position {
			sorted = false
		}
	}
	if !sorted {
		events = slices.Clone(events)
		slices.SortStableFunc(events, func(a, b Event) int { return cmp.Compare(a.Position, b.Position) })
	}

	// 1. Purpose, application, jurisdiction.
	p, ok := reg.Purpose(q.Purpose)
	if !ok {
		return res.deny(ReasonPurposeNotAllowed, "", "purpose %q is not in the purposes registry", q.Purpose)
	}
	if !p.Allows(q.Application) {
		return res.deny(ReasonPurposeNotAllowed, "", "application %q may not process for %s (only %v)", q.Application, p.ID, p.Applications)
	}
	rule, ok := p.Rule(q.Jurisdiction)
	if !ok {
		return res.deny(ReasonPurposeNotAllowed, "", "%s has no rule for jurisdiction %q and no \"*\" rule", p.ID, q.Jurisdiction)
	}
	res.Basis = rule.Basis

	// 2. Another legal basis.
	if rule.Basis != BasisConsent {
		res.Allowed, res.Status = true, StatusNotRequired
		res.Detail = fmt.Sprintf("%s%s: basis %s, no consent needed", p.ID, inJurisdictionNote(q.Jurisdiction), rule.Basis)
		return res
	}

	// 4. Replay (before 3, whose activity it extends).
	var buf [8]decideGrant
	grants, last := replay(buf[:0], events, q, rule)

	// 3. Dormancy.
	if reg.Dormancy > 0 && !lastActive.IsZero() {
		active := lastActive
		for j := range grants {
			if grants[j].at.After(active) {
				active = grants[j].at
			}
		}
		if idle := q.Now.Sub(active); idle > reg.Dormancy {
			return res.deny(ReasonRevalidationRequired, "",
				"%s last active %s, %s before %s: consent-based purposes need revalidation after %s of inactivity",
				q.Subject, dateOnly(active), dayCount(idle.Truncate(24*time.Hour)), dateOnly(q.Now), dayCount(reg.Dormancy))
		}
	}

	// 5. Live grants.
	valid, failing := -1, -1
	var reason string
	for j := range grants {
		g := &grants[j]
		if g.ended >= 0 {
			continue
		}
		r := grantFailure(g, rule, p, q, events, guardianOK)
		switch {
		case r == "":
			if valid < 0 || g.ev > grants[valid].ev {
				valid = j
			}
		case failing < 0 || g.ev > grants[failing].ev:
			failing, reason = j, r
		}
	}
	if valid >= 0 {
		g := &grants[valid]
		e := &events[g.ev]
		res.Allowed, res.Status, res.GrantID = true, StatusGranted, g.id
		res.Detail = grantedDetail(g, rule, p, q, e)
		return res
	}
	if failing >= 0 {
		g := &grants[failing]
		return res.deny(reason, g.id, "%s", failureDetail(reason, g, rule, p, q, &events[g.ev]))
	}

	// 6. No live grant.
	if last >= 0 {
		e := &events[last]
		id, stale, n := "", true, 0
		for j := range grants {
			if grants[j].ended == last {
				id, n = grants[j].id, n+1
				stale = stale && grants[j].stale
			}
		}
		switch {
		case e.Type == EventRefused:
			return res.deny(ReasonConsentWithdrawn, id, "%s refused by %s on %s%s", p.ID, eventActor(e, q), dateOnly(e.At), optedOutNote(rule))
		case n > 0 && stale:
			return res.deny(ReasonConsentExpired, id, "grant %s had expired when it was %s on %s", id, e.Type, dateOnly(e.At))
		case e.GrantID != "":
			return res.deny(ReasonConsentWithdrawn, id, "grant %s %s by %s on %s", e.GrantID, e.Type, eventActor(e, q), dateOnly(e.At))
		}
		return res.deny(ReasonConsentWithdrawn, id, "every grant of %s %s by %s on %s%s", p.ID, e.Type, eventActor(e, q), dateOnly(e.At), optedOutNote(rule))
	}
	if rule.Default == DefaultOptOut {
		res.Allowed, res.Status = true, StatusOptOutDefault
		res.Detail = fmt.Sprintf("no choice recorded for %s%s: the default is opt-out", p.ID, inJurisdictionNote(q.Jurisdiction))
		return res
	}
	return res.deny(ReasonConsentMissing, "", "no consent recorded for %s%s (default %s)", p.ID, inJurisdictionNote(q.Jurisdiction), rule.Default)
}

// replay folds the events of q.Purpose that concern q.Application into
// grants (appended to grants, ended ones kept with their ending event) and
// returns them with the index of the last event that concerned
// q.Application (-1: none).
func replay(grants []decideGrant, events []Event, q CheckQuery, rule Rule) ([]decideGrant, int) {
	last := -1
	find := func(id string) int {
		for i := range grants {
			if grants[i].id == id {
				return i
			}
		}
		return -1
	}
	end := func(g *decideGrant, i int) {
		t, ok, _ := grantExpiry(g, rule)
		g.ended, g.stale = i, ok && !events[i].At.Before(t)
	}
	for i := range events {
		e := &events[i]
		if e.Purpose != q.Purpose {
			continue
		}
		covers := len(e.Applications) == 0 || slices.Contains(e.Applications, q.Application)
		switch e.Type {
		case EventGiven:
			id := cmp.Or(e.GrantID, e.ID)
			if j := find(id); j >= 0 { // a grant given again replaces it
				grants = slices.Delete(grants, j, j+1)
			}
			if !covers {
				continue
			}
			g := decideGrant{id: id, ev: i, at: e.At, notice: e.Notice.Version, ended: -1}
			if e.Expires != nil {
				g.expires = *e.Expires
			}
			grants = append(grants, g)
			last = i
		case EventRenewed:
			j := find(e.GrantID)
			if j < 0 || grants[j].ended >= 0 {
				continue
			}
			g := &grants[j]
			g.ev = i
			if !e.At.IsZero() {
				g.at = e.At
			}
			if e.Expires != nil {
				g.expires = *e.Expires
			}
			if e.Notice != (Notice{}) {
				g.notice = e.Notice.Version
			}
			last = i
		case EventWithdrawn, EventRevoked:
			if !covers {
				continue
			}
			if e.GrantID != "" {
				j := find(e.GrantID)
				if j < 0 || grants[j].ended >= 0 {
					continue
				}
				end(&grants[j], i)
				last = i
				continue
			}
			for j := range grants {
				if grants[j].ended < 0 {
					end(&grants[j], i)
				}
			}
			last = i
		case EventRefused:
			if !covers {
				continue
			}
			for j := range grants {
				if grants[j].ended < 0 {
					end(&grants[j], i)
				}
			}
			last = i
		}
	}
	return grants, last
}

// grantedDetail writes "grant g-1 (marketing) given by user:dave on
// 2026-02-01, valid until 2027-02-01" with one allocation: it is on the
// path of every allowed decision.
func grantedDetail(g *decideGrant, rule Rule, p Purpose, q CheckQuery, e *Event) string {
	var buf [192]byte
	b := append(buf[:0], "grant "...)
	b = append(b, g.id...)
	b = append(b, " ("...)
	b = append(b, p.ID...)
	b = append(b, ") "...)
	b = append(b, grantVerb(e.Type)...)
	b = append(b, " by "...)
	a := eventActor(e, q)
	b = append(append(append(b, a.Type...), ':'), a.ID...)
	b = append(b, " on "...)
	b = g.at.UTC().AppendFormat(b, time.DateOnly)
	if t, ok, _ := grantExpiry(g, rule); ok {
		b = append(b, ", valid until "...)
		b = t.UTC().AppendFormat(b, time.DateOnly)
	} else {
		b = append(b, ", no expiry"...)
	}
	return string(b)
}

func (res CheckResult) deny(reason, grant, format string, args ...any) CheckResult {
	res.Allowed, res.Status, res.Reason, res.GrantID = false, reason, reason, grant
	res.Detail = fmt.Sprintf(format, args...)
	return res
}

// expiry is when the grant stops being valid: its own expiry or the rule's
// max_validity after it was given or renewed, whichever comes first.
// byMax tells that max_validity is the earlier.
func grantExpiry(g *decideGrant, rule Rule) (t time.Time, ok, byMax bool) {
	t = g.expires
	if rule.MaxValidity > 0 {
		if m := g.at.Add(rule.MaxValidity); t.IsZero() || m.Before(t) {
			return m, true, true
		}
	}
	return t, !t.IsZero(), false
}

// check returns the reason the grant cannot be relied on now, "" if it
// can.
func grantFailure(g *decideGrant, rule Rule, p Purpose, q CheckQuery, events []Event, guardianOK func(Event) bool) string {
	if t, ok, _ := grantExpiry(g, rule); ok && !q.Now.Before(t) {
		return ReasonConsentExpired
	}
	if p.NoticeMinVersion > 0 && g.notice < p.NoticeMinVersion {
		return ReasonRevalidationRequired
	}
	if rule.MinAge > 0 && q.BirthDate != nil && underAgeAt(*q.BirthDate, rule.MinAge, g.at) {
		e := &events[g.ev]
		if givenBySubject(e, q) || guardianOK == nil || !guardianOK(*e) {
			return ReasonConsentInvalidMinor
		}
	}
	return ""
}

// underAge reports whether someone born on birth (its UTC calendar day) was
// younger than age at t. Someone born on 29 February reaches an age on 1
// March in years without one.
func underAgeAt(birth time.Time, age int, t time.Time) bool {
	y, m, d := birth.UTC().Date()
	return t.Before(time.Date(y+age, m, d, 0, 0, 0, 0, time.UTC))
}

// self reports whether the event was given by the data subject; an event
// without an actor counts as the subject's own.
func givenBySubject(e *Event, q CheckQuery) bool {
	subject := e.Subject
	if subject == (Ref{}) {
		subject = q.Subject
	}
	return e.Actor == (Ref{}) || e.Actor == subject
}

func failureDetail(reason string, g *decideGrant, rule Rule, p Purpose, q CheckQuery, e *Event) string {
	switch reason {
	case ReasonConsentExpired:
		t, _, _ := grantExpiry(g, rule)
		if rule.MaxValidity > 0 {
			return fmt.Sprintf("grant %s expired on %s (%s, max %s)", g.id, dateOnly(t), p.ID, dayCount(rule.MaxValidity))
		}
		return fmt.Sprintf("grant %s expired on %s (%s)", g.id, dateOnly(t), p.ID)
	case ReasonRevalidationRequired:
		return fmt.Sprintf("grant %s was given on notice version %d; %s needs version %d or later", g.id, g.notice, p.ID, p.NoticeMinVersion)
	case ReasonConsentInvalidMinor:
		if givenBySubject(e, q) {
			return fmt.Sprintf("grant %s was %s by %s on %s, under %d%s: only a guardian can consent", g.id, grantVerb(e.Type), eventActor(e, q), dateOnly(g.at), rule.MinAge, inJurisdictionNote(q.Jurisdiction))
		}
		return fmt.Sprintf("grant %s was %s by %s for %s on %s, under %d%s, without an active guardianship", g.id, grantVerb(e.Type), e.Actor, q.Subject, dateOnly(g.at), rule.MinAge, inJurisdictionNote(q.Jurisdiction))
	}
	return reason
}

func grantVerb(t EventType) string {
	if t == EventRenewed {
		return "renewed"
	}
	return "given"
}

// eventActor is who made the event: its actor, else its subject, else the
// data subject asked about.
func eventActor(e *Event, q CheckQuery) Ref {
	switch {
	case e.Actor != (Ref{}):
		return e.Actor
	case e.Subject != (Ref{}):
		return e.Subject
	}
	return q.Subject
}

func optedOutNote(rule Rule) string {
	if rule.Default == DefaultOptOut {
		return " (opted out)"
	}
	return ""
}

func inJurisdictionNote(j string) string {
	if j == "" {
		return ""
	}
	return " in " + j
}

func dateOnly(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// days writes a whole number of days as "180 days", anything else as Go
// does.
func dayCount(d time.Duration) string {
	const oneDay = 24 * time.Hour
	switch {
	case d == oneDay:
		return "1 day"
	case d > 0 && d%oneDay == 0:
		return fmt.Sprintf("%d days", d/oneDay)
	}
	return d.String()
}
