package consent

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/purposes"
)

// The people of the Northbank scenario.
var (
	nbAlice = Ref{Type: "user", ID: "alice"}
	nbCarol = Ref{Type: "user", ID: "carol"}
	nbDave  = Ref{Type: "user", ID: "dave"}
	nbHeidi = Ref{Type: "user", ID: "heidi"}
	nbIvan  = Ref{Type: "user", ID: "ivan"}
	nbJudy  = Ref{Type: "user", ID: "judy"}
)

// rulesNow is "now" of the scenario.
var rulesNow = rtDate("2026-11-28T09:00:00Z")

func rtDate(s string) time.Time {
	if len(s) == len(time.DateOnly) {
		s += "T00:00:00Z"
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func rtDatep(s string) *time.Time { t := rtDate(s); return &t }

// ev builds an event of the subject's own: its grant id, at a date, on
// notice version 2.
func rtEvent(typ EventType, subject Ref, purpose, grant, at string) Event {
	return Event{
		ID: "ev-" + grant + "-" + string(typ), Type: typ, GrantID: grant,
		Subject: subject, Actor: subject, Purpose: purpose, PurposeVersion: 1,
		Notice: Notice{URI: "https://northbank.example/privacy", Version: 2},
		At:     rtDate(at), RecordedAt: rtDate(at),
	}
}

// seq gives the events positions 1, 2, … in order.
func rtSeq(events ...Event) []Event {
	for i := range events {
		events[i].Position = int64(i + 1)
	}
	return events
}

func rtWith(e Event, f func(*Event)) Event { f(&e); return e }

func rtBy(actor Ref, delegation string) func(*Event) {
	return func(e *Event) { e.Actor, e.Delegation = actor, delegation }
}

func rtExpiring(at string) func(*Event) { return func(e *Event) { e.Expires = rtDatep(at) } }

func rtApps(apps ...string) func(*Event) { return func(e *Event) { e.Applications = apps } }

func rtNotice(v int) func(*Event) { return func(e *Event) { e.Notice.Version = v } }

// daveIsGuardian is the civil register: dave is carol's statutory guardian
// (delegation del-dave-carol) until she turns 18.
func rtDaveIsGuardian(e Event) bool {
	return e.Actor == nbDave && e.Delegation == "del-dave-carol" && e.At.Before(rtDate("2029-06-15"))
}

func TestDecide(t *testing.T) {
	reg := testRegistry(t)
	noRuleReg, err := purposes.ParseRegistry([]byte(`version: "t"
purposes:
  marketing:
    version: 1
    applications: [marketing-hub]
    rules:
      DE: {basis: consent, default: opt_in}
`))
	if err != nil {
		t.Fatal(err)
	}
	const (
		fa   = "financial_advice"
		mkt  = "marketing"
		aisp = "account_information_sharing"
	)
	q := func(subject Ref, purpose, app, jurisdiction string) CheckQuery {
		return CheckQuery{Subject: subject, Purpose: purpose, Application: app, Jurisdiction: jurisdiction, Now: rulesNow}
	}
	carolQ := func() CheckQuery {
		c := q(nbCarol, mkt, "marketing-hub", "DE")
		c.BirthDate = rtDatep("2011-06-15")
		return c
	}
	at := func(c CheckQuery, now string) CheckQuery { c.Now = rtDate(now); return c }
	aliceFA := rtEvent(EventGiven, nbAlice, fa, "g-fa-alice", "2026-03-01")
	daveForCarol := rtWith(rtEvent(EventGiven, nbCarol, mkt, "g-mkt-dave", "2026-02-01"), rtBy(nbDave, "del-dave-carol"))
	carolsOwn := rtEvent(EventGiven, nbCarol, mkt, "g-mkt-carol", "2026-04-01")
	judyAISP := rtWith(rtEvent(EventGiven, nbJudy, aisp, "g-aisp-judy", "2026-01-01"), rtExpiring("2026-06-30"))
	aliceAISP := rtWith(rtEvent(EventGiven, nbAlice, aisp, "g-aisp-alice", "2026-09-01"), rtExpiring("2027-02-28"))
	heidiMkt := rtEvent(EventGiven, nbHeidi, mkt, "g-mkt-heidi", "2022-05-10")

	for _, tc := range []struct {
		name       string
		reg        *Registry
		q          CheckQuery
		events     []Event
		lastActive time.Time
		guardian   func(Event) bool
		want       CheckResult // Detail: a fragment
	}{
		{
			name: "gina views alice's portfolio: financial_advice given",
			q:    q(nbAlice, fa, "advisor-portal", "DE"), events: rtSeq(aliceFA),
			want: CheckResult{Allowed: true, Status: StatusGranted, Basis: BasisConsent, GrantID: "g-fa-alice", Position: 1,
				Detail: "grant g-fa-alice (financial_advice) given by user:alice on 2026-03-01, valid until 2028-02-29"},
		},
		{
			name: "gina after alice withdraws financial_advice",
			q:    q(nbAlice, fa, "advisor-portal", "DE"),
			events: rtSeq(aliceFA,
				rtEvent(EventWithdrawn, nbAlice, fa, "g-fa-alice", "2026-11-20")),
			want: CheckResult{Status: ReasonConsentWithdrawn, Reason: ReasonConsentWithdrawn, Basis: BasisConsent, GrantID: "g-fa-alice", Position: 2,
				Detail: "grant g-fa-alice withdrawn by user:alice on 2026-11-20"},
		},
		{
			name: "the same call from marketing-hub",
			q:    q(nbAlice, fa, "marketing-hub", "DE"), events: rtSeq(aliceFA),
			want: CheckResult{Status: ReasonPurposeNotAllowed, Reason: ReasonPurposeNotAllowed, Position: 1,
				Detail: `application "marketing-hub" may not process for financial_advice`},
		},
		{
			name: "unknown purpose",
			q:    q(nbAlice, "telemarketing", "marketing-hub", "DE"),
			want: CheckResult{Status: ReasonPurposeNotAllowed, Reason: ReasonPurposeNotAllowed, Detail: `purpose "telemarketing" is not in the purposes registry`},
		},
		{
			name: "no rule for the jurisdiction",
			reg:  noRuleReg, q: q(nbIvan, mkt, "marketing-hub", "US-CA"),
			want: CheckResult{Status: ReasonPurposeNotAllowed, Reason: ReasonPurposeNotAllowed, Detail: `marketing has no rule for jurisdiction "US-CA"`},
		},
		{
			name: "send_marketing to carol on dave's grant (guardian)",
			q:    carolQ(), events: rtSeq(daveForCarol), guardian: rtDaveIsGuardian,
			want: CheckResult{Allowed: true, Status: StatusGranted, Basis: BasisConsent, GrantID: "g-mkt-dave", Position: 1,
				Detail: "given by user:dave on 2026-02-01, no expiry"},
		},
		{
			name: "send_marketing to carol: dave's and carol's grants",
			q:    carolQ(), events: rtSeq(daveForCarol, carolsOwn), guardian: rtDaveIsGuardian,
			want: CheckResult{Allowed: true, Status: StatusGranted, Basis: BasisConsent, GrantID: "g-mkt-dave", Position: 2},
		},
		{
			name: "send_marketing to carol on her own grant only",
			q:    carolQ(), events: rtSeq(carolsOwn), guardian: rtDaveIsGuardian,
			want: CheckResult{Status: ReasonConsentInvalidMinor, Reason: ReasonConsentInvalidMinor, Basis: BasisConsent, GrantID: "g-mkt-carol", Position: 1,
				Detail: "grant g-mkt-carol was given by user:carol on 2026-04-01, under 16 in DE: only a guardian can consent"},
		},
		{
			name: "send_marketing to carol on dave's grant without guardianship",
			q:    carolQ(), events: rtSeq(daveForCarol), guardian: func(Event) bool { return false },
			want: CheckResult{Status: ReasonConsentInvalidMinor, Reason: ReasonConsentInvalidMinor, Basis: BasisConsent, GrantID: "g-mkt-dave", Position: 1,
				Detail: "given by user:dave for user:carol on 2026-02-01, under 16 in DE, without an active guardianship"},
		},
		{
			name: "send_marketing to carol on dave's grant, no guardian check",
			q:    carolQ(), events: rtSeq(daveForCarol),
			want: CheckResult{Status: ReasonConsentInvalidMinor, Reason: ReasonConsentInvalidMinor, Basis: BasisConsent, GrantID: "g-mkt-dave", Position: 1},
		},
		{
			name: "carol renews dave's grant herself while under 16",
			q:    carolQ(), guardian: rtDaveIsGuardian,
			events: rtSeq(daveForCarol, rtEvent(EventRenewed, nbCarol, mkt, "g-mkt-dave", "2026-10-01")),
			want: CheckResult{Status: ReasonConsentInvalidMinor, Reason: ReasonConsentInvalidMinor, Basis: BasisConsent, GrantID: "g-mkt-dave", Position: 2,
				Detail: "grant g-mkt-dave was renewed by user:carol on 2026-10-01"},
		},
		{
			name: "carol's own grant given on her 16th birthday",
			q:    at(carolQ(), "2027-07-01T00:00:00Z"), events: rtSeq(rtEvent(EventGiven, nbCarol, mkt, "g-mkt-carol16", "2027-06-15")),
			want: CheckResult{Allowed: true, Status: StatusGranted, Basis: BasisConsent, GrantID: "g-mkt-carol16", Position: 1},
		},
		{
			name: "carol's own grant given the day before her 16th birthday",
			q:    at(carolQ(), "2027-07-01T00:00:00Z"), events: rtSeq(rtEvent(EventGiven, nbCarol, mkt, "g-mkt-carol15", "2027-06-14T23:59:59Z")),
			want: CheckResult{Status: ReasonConsentInvalidMinor, Reason: ReasonConsentInvalidMinor, Basis: BasisConsent, GrantID: "g-mkt-carol15", Position: 1},
		},
		{
			name: "send_marketing to heidi: dormant",
			q:    q(nbHeidi, mkt, "marketing-hub", "DE"), events: rtSeq(heidiMkt), lastActive: rtDate("2023-01-10T18:00:00Z"),
			want: CheckResult{Status: ReasonRevalidationRequired, Reason: ReasonRevalidationRequired, Basis: BasisConsent, Position: 1,
				Detail: "user:heidi last active 2023-01-10, 1417 days before 2026-11-28: consent-based purposes need revalidation after 730 days of inactivity"},
		},
		{
			name: "heidi, active again only a day ago",
			q:    q(nbHeidi, mkt, "marketing-hub", "DE"), events: rtSeq(heidiMkt), lastActive: rtDate("2026-11-27"),
			want: CheckResult{Allowed: true, Status: StatusGranted, Basis: BasisConsent, GrantID: "g-mkt-heidi", Position: 1},
		},
		{
			name: "heidi renews her grant: revalidated",
			q:    q(nbHeidi, mkt, "marketing-hub", "DE"), lastActive: rtDate("2023-01-10"),
			events: rtSeq(heidiMkt, rtEvent(EventRenewed, nbHeidi, mkt, "g-mkt-heidi", "2026-11-28T08:00:00Z")),
			want:   CheckResult{Allowed: true, Status: StatusGranted, Basis: BasisConsent, GrantID: "g-mkt-heidi", Position: 2},
		},
		{
			name: "heidi, last activity unknown: no dormancy",
			q:    q(nbHeidi, mkt, "marketing-hub", "DE"), events: rtSeq(heidiMkt),
			want: CheckResult{Allowed: true, Status: StatusGranted, Basis: BasisConsent, GrantID: "g-mkt-heidi", Position: 1},
		},
		{
			name: "send_marketing to ivan: no choice, opt-out",
			q:    q(nbIvan, mkt, "marketing-hub", "US-CA"), lastActive: rtDate("2026-11-01"),
			want: CheckResult{Allowed: true, Status: StatusOptOutDefault, Basis: BasisConsent,
				Detail: "no choice recorded for marketing in US-CA: the default is opt-out"},
		},
		{
			name: "send_marketing to ivan after he opts out",
			q:    q(nbIvan, mkt, "marketing-hub", "US-CA"),
			events: rtSeq(
				rtEvent(EventGiven, nbIvan, fa, "g-fa-ivan", "2026-01-01"),
				rtEvent(EventRefused, nbIvan, mkt, "", "2026-11-20")),
			want: CheckResult{Status: ReasonConsentWithdrawn, Reason: ReasonConsentWithdrawn, Basis: BasisConsent, Position: 2,
				Detail: "marketing refused by user:ivan on 2026-11-20 (opted out)"},
		},
		{
			name:   "ivan opts out by withdrawing, without a grant",
			q:      q(nbIvan, mkt, "marketing-hub", "US-CA"),
			events: rtSeq(rtEvent(EventWithdrawn, nbIvan, mkt, "", "2026-11-20")),
			want: CheckResult{Status: ReasonConsentWithdrawn, Reason: ReasonConsentWithdrawn, Basis: BasisConsent, Position: 1,
				Detail: "every grant of marketing withdrawn by user:ivan on 2026-11-20 (opted out)"},
		},
		{
			name: "ivan opts out, then opts in",
			q:    q(nbIvan, mkt, "marketing-hub", "US-CA"),
			events: rtSeq(
				rtEvent(EventRefused, nbIvan, mkt, "", "2026-10-01"),
				rtEvent(EventGiven, nbIvan, mkt, "g-mkt-ivan", "2026-11-01")),
			want: CheckResult{Allowed: true, Status: StatusGranted, Basis: BasisConsent, GrantID: "g-mkt-ivan", Position: 2},
		},
		{
			name:   "ivan's refusal for another application does not opt him out here",
			q:      q(nbIvan, mkt, "marketing-hub", "US-CA"),
			events: rtSeq(rtWith(rtEvent(EventRefused, nbIvan, mkt, "", "2026-10-01"), rtApps("newsletter"))),
			want:   CheckResult{Allowed: true, Status: StatusOptOutDefault, Basis: BasisConsent, Position: 1},
		},
		{
			name: "budget-app for judy: expired",
			q:    q(nbJudy, aisp, "budget-app", "DE"), events: rtSeq(judyAISP),
			want: CheckResult{Status: ReasonConsentExpired, Reason: ReasonConsentExpired, Basis: BasisConsent, GrantID: "g-aisp-judy", Position: 1,
				Detail: "grant g-aisp-judy expired on 2026-06-30 (account_information_sharing, max 180 days)"},
		},
		{
			name:   "judy renews: valid again",
			q:      q(nbJudy, aisp, "budget-app", "DE"),
			events: rtSeq(judyAISP, rtWith(rtEvent(EventRenewed, nbJudy, aisp, "g-aisp-judy", "2026-07-15"), rtExpiring("2027-01-10"))),
			want:   CheckResult{Allowed: true, Status: StatusGranted, Basis: BasisConsent, GrantID: "g-aisp-judy", Position: 2, Detail: "renewed by user:judy on 2026-07-15, valid until 2027-01-10"},
		},
		{
			name:   "judy's expired grant revoked afterwards: still expired",
			q:      q(nbJudy, aisp, "budget-app", "DE"),
			events: rtSeq(judyAISP, rtWith(rtEvent(EventRevoked, nbJudy, aisp, "g-aisp-judy", "2026-07-01"), rtBy(Ref{Type: "application", ID: "budget-app"}, ""))),
			want: CheckResult{Status: ReasonConsentExpired, Reason: ReasonConsentExpired, Basis: BasisConsent, GrantID: "g-aisp-judy", Position: 2,
				Detail: "grant g-aisp-judy had expired when it was revoked on 2026-07-01"},
		},
		{
			name: "budget-app for alice: within 180 days",
			q:    q(nbAlice, aisp, "budget-app", "DE"), events: rtSeq(aliceAISP),
			want: CheckResult{Allowed: true, Status: StatusGranted, Basis: BasisConsent, GrantID: "g-aisp-alice", Position: 1, Detail: "valid until 2027-02-28"},
		},
		{
			name: "budget-app for alice: 180 days later",
			q:    at(q(nbAlice, aisp, "budget-app", "DE"), "2027-02-28T00:00:00Z"), events: rtSeq(aliceAISP),
			want: CheckResult{Status: ReasonConsentExpired, Reason: ReasonConsentExpired, Basis: BasisConsent, GrantID: "g-aisp-alice", Position: 1,
				Detail: "grant g-aisp-alice expired on 2027-02-28 (account_information_sharing, max 180 days)"},
		},
		{
			name: "alice's grant without expiry: the 180-day limit",
			q:    q(nbAlice, aisp, "budget-app", "DE"), events: rtSeq(rtEvent(EventGiven, nbAlice, aisp, "g-aisp-old", "2026-05-01")),
			want: CheckResult{Status: ReasonConsentExpired, Reason: ReasonConsentExpired, Basis: BasisConsent, GrantID: "g-aisp-old", Position: 1,
				Detail: "grant g-aisp-old expired on 2026-10-28 (account_information_sharing, max 180 days)"},
		},
		{
			name:   "alice's grant expiring after the 180-day limit: the limit wins",
			q:      at(q(nbAlice, aisp, "budget-app", "DE"), "2027-03-01"),
			events: rtSeq(rtWith(rtEvent(EventGiven, nbAlice, aisp, "g-aisp-long", "2026-09-01"), rtExpiring("2027-12-31"))),
			want: CheckResult{Status: ReasonConsentExpired, Reason: ReasonConsentExpired, Basis: BasisConsent, GrantID: "g-aisp-long", Position: 1,
				Detail: "expired on 2027-02-28"},
		},
		{
			name: "financial_advice on an old notice",
			q:    q(nbAlice, fa, "advisor-portal", "DE"), events: rtSeq(rtWith(aliceFA, rtNotice(1))),
			want: CheckResult{Status: ReasonRevalidationRequired, Reason: ReasonRevalidationRequired, Basis: BasisConsent, GrantID: "g-fa-alice", Position: 1,
				Detail: "grant g-fa-alice was given on notice version 1; financial_advice needs version 2 or later"},
		},
		{
			name:   "financial_advice renewed on the new notice",
			q:      q(nbAlice, fa, "advisor-portal", "DE"),
			events: rtSeq(rtWith(aliceFA, rtNotice(1)), rtEvent(EventRenewed, nbAlice, fa, "g-fa-alice", "2026-11-01")),
			want:   CheckResult{Allowed: true, Status: StatusGranted, Basis: BasisConsent, GrantID: "g-fa-alice", Position: 2},
		},
		{
			name:   "a renewal does not revive a withdrawn grant",
			q:      q(nbAlice, fa, "advisor-portal", "DE"),
			events: rtSeq(aliceFA, rtEvent(EventWithdrawn, nbAlice, fa, "g-fa-alice", "2026-10-01"), rtEvent(EventRenewed, nbAlice, fa, "g-fa-alice", "2026-11-01")),
			want:   CheckResult{Status: ReasonConsentWithdrawn, Reason: ReasonConsentWithdrawn, Basis: BasisConsent, GrantID: "g-fa-alice", Position: 3},
		},
		{
			name:   "withdrawal of one grant leaves another",
			q:      q(nbAlice, fa, "advisor-portal", "DE"),
			events: rtSeq(aliceFA, rtEvent(EventGiven, nbAlice, fa, "g-fa-alice-2", "2026-05-01"), rtEvent(EventWithdrawn, nbAlice, fa, "g-fa-alice", "2026-11-20")),
			want:   CheckResult{Allowed: true, Status: StatusGranted, Basis: BasisConsent, GrantID: "g-fa-alice-2", Position: 3},
		},
		{
			name:   "withdrawal of every grant of the purpose",
			q:      q(nbAlice, fa, "advisor-portal", "DE"),
			events: rtSeq(aliceFA, rtEvent(EventGiven, nbAlice, fa, "g-fa-alice-2", "2026-05-01"), rtEvent(EventWithdrawn, nbAlice, fa, "", "2026-11-20")),
			want: CheckResult{Status: ReasonConsentWithdrawn, Reason: ReasonConsentWithdrawn, Basis: BasisConsent, GrantID: "g-fa-alice-2", Position: 3,
				Detail: "every grant of financial_advice withdrawn by user:alice on 2026-11-20"},
		},
		{
			name:   "withdrawal for another application leaves the grant",
			q:      q(nbAlice, fa, "advisor-portal", "DE"),
			events: rtSeq(aliceFA, rtWith(rtEvent(EventWithdrawn, nbAlice, fa, "", "2026-11-20"), rtApps("robo-advisor"))),
			want:   CheckResult{Allowed: true, Status: StatusGranted, Basis: BasisConsent, GrantID: "g-fa-alice", Position: 2},
		},
		{
			name:   "a grant for other applications is ignored",
			q:      q(nbAlice, fa, "advisor-portal", "DE"),
			events: rtSeq(rtWith(aliceFA, rtApps("robo-advisor")), rtEvent(EventGiven, nbAlice, mkt, "g-mkt-alice", "2026-03-01")),
			want: CheckResult{Status: ReasonConsentMissing, Reason: ReasonConsentMissing, Basis: BasisConsent, Position: 2,
				Detail: "no consent recorded for financial_advice in DE (default opt_in)"},
		},
		{
			name: "a grant listing the application counts",
			q:    q(nbAlice, fa, "advisor-portal", "DE"), events: rtSeq(rtWith(aliceFA, rtApps("robo-advisor", "advisor-portal"))),
			want: CheckResult{Allowed: true, Status: StatusGranted, Basis: BasisConsent, GrantID: "g-fa-alice", Position: 1},
		},
		{
			name: "bob pays for alice: account_servicing is contract",
			q:    q(nbAlice, "account_servicing", "mobile-banking", "DE"), events: rtSeq(aliceFA), lastActive: rtDate("2020-01-01"),
			want: CheckResult{Allowed: true, Status: StatusNotRequired, Basis: BasisContract, Position: 1,
				Detail: "account_servicing in DE: basis contract, no consent needed"},
		},
		{
			name: "events out of order are sorted",
			q:    q(nbAlice, fa, "advisor-portal", "DE"),
			events: []Event{
				rtWith(rtEvent(EventWithdrawn, nbAlice, fa, "g-fa-alice", "2026-11-20"), func(e *Event) { e.Position = 9 }),
				rtWith(aliceFA, func(e *Event) { e.Position = 4 }),
			},
			want: CheckResult{Status: ReasonConsentWithdrawn, Reason: ReasonConsentWithdrawn, Basis: BasisConsent, GrantID: "g-fa-alice", Position: 9},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.reg
			if r == nil {
				r = reg
			}
			before := slices.Clone(tc.events)
			got := Decide(r, tc.q, tc.events, tc.lastActive, tc.guardian)
			wantDetail := tc.want.Detail
			detail := got.Detail
			got.Detail, tc.want.Detail = "", ""
			if got != tc.want {
				t.Errorf("Decide:\n got %+v\nwant %+v\n(detail %q)", got, tc.want, detail)
			}
			if detail == "" || !strings.Contains(detail, wantDetail) || strings.Contains(detail, "\n") {
				t.Errorf("Detail %q, want one line with %q", detail, wantDetail)
			}
			if !reflect.DeepEqual(before, tc.events) {
				t.Error("Decide changed the events it was given")
			}
		})
	}
}

// TestDecideMostRecentFailure: with no valid grant, the most recently
// confirmed failing grant gives the reason.
func TestDecideMostRecentFailure(t *testing.T) {
	reg := testRegistry(t)
	q := CheckQuery{Subject: nbAlice, Purpose: "financial_advice", Application: "advisor-portal", Jurisdiction: "DE", Now: rulesNow}
	expired := rtWith(rtEvent(EventGiven, nbAlice, "financial_advice", "g-old", "2026-01-01"), rtExpiring("2026-06-01"))
	oldNotice := rtWith(rtEvent(EventGiven, nbAlice, "financial_advice", "g-notice", "2026-02-01"), rtNotice(1))
	got := Decide(reg, q, rtSeq(expired, oldNotice), time.Time{}, nil)
	if got.Reason != ReasonRevalidationRequired || got.GrantID != "g-notice" {
		t.Errorf("got %+v, want revalidation_required on g-notice", got)
	}
	got = Decide(reg, q, rtSeq(oldNotice, expired), time.Time{}, nil)
	if got.Reason != ReasonConsentExpired || got.GrantID != "g-old" {
		t.Errorf("got %+v, want consent_expired on g-old", got)
	}
}

// TestDecideNilRegistry: without a registry nothing is allowed.
func TestDecideNilRegistry(t *testing.T) {
	got := Decide(nil, CheckQuery{Subject: nbAlice, Purpose: "marketing", Application: "marketing-hub", Now: rulesNow}, nil, time.Time{}, nil)
	if got.Allowed || got.Reason != ReasonPurposeNotAllowed {
		t.Errorf("got %+v", got)
	}
}

// BenchmarkDecide: a typical data subject with five events over three
// purposes, asked for the one with a renewed grant.
func BenchmarkDecide(b *testing.B) {
	reg := testRegistry(b)
	events := rtSeq(
		rtEvent(EventGiven, nbAlice, "financial_advice", "g-fa", "2026-03-01"),
		rtWith(rtEvent(EventGiven, nbAlice, "account_information_sharing", "g-aisp", "2026-06-01"), rtExpiring("2026-11-30")),
		rtEvent(EventRefused, nbAlice, "marketing", "", "2026-07-01"),
		rtWith(rtEvent(EventRenewed, nbAlice, "account_information_sharing", "g-aisp", "2026-09-01"), rtExpiring("2027-02-28")),
		rtEvent(EventGiven, nbAlice, "marketing", "g-mkt", "2026-10-01"),
	)
	q := CheckQuery{Subject: nbAlice, Purpose: "account_information_sharing", Application: "budget-app", Jurisdiction: "DE",
		BirthDate: rtDatep("1990-04-02"), Now: rulesNow}
	lastActive := rtDate("2026-11-27")
	if r := Decide(reg, q, events, lastActive, rtDaveIsGuardian); !r.Allowed {
		b.Fatalf("Decide: %+v", r)
	}
	b.ReportAllocs()
	for b.Loop() {
		Decide(reg, q, events, lastActive, rtDaveIsGuardian)
	}
}
