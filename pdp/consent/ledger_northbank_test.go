package consent

import (
	"context"
	"testing"
	"time"
)

// northbankSeed is the consent cast of the Northbank scenario
// (/work/shared/SCENARIO-bank.md) as a seed: ids, subjects and the
// delegation carry the test's suffix.
func northbankSeed(sfx string) []Event {
	u := func(id string) Ref { return Ref{Type: "user", ID: id + sfx} }
	ev := func(id string, subject Ref, purpose, app string, at time.Time, notice int) Event {
		return Event{
			ID: id + sfx, Type: EventGiven, Subject: subject, Actor: subject, Application: app,
			Purpose: purpose, PurposeVersion: 1, Applications: []string{app}, Jurisdiction: "DE",
			Notice:  Notice{URI: "https://northbank.example/privacy/" + purpose, Version: notice},
			Channel: "app", At: at,
		}
	}
	alice, carol, dave, heidi, judy := u("alice"), u("carol"), u("dave"), u("heidi"), u("judy")
	aliceAIS := ev("cev-alice-ais", alice, "account_information_sharing", "budget-app", ymd(2026, 9, 1), 1)
	aliceAIS.Expires = timep(ymd(2027, 2, 28))
	daveForCarol := ev("cev-carol-by-dave", carol, "marketing", "marketing-hub", ymd(2026, 5, 1), 1)
	daveForCarol.Actor, daveForCarol.Delegation, daveForCarol.PurposeVersion = dave, "guardian-carol-dave"+sfx, 3
	carolHerself := ev("cev-carol-own", carol, "marketing", "marketing-hub", ymd(2026, 6, 1), 1)
	carolHerself.PurposeVersion = 3
	heidiMarketing := ev("cev-heidi-marketing", heidi, "marketing", "marketing-hub", ymd(2022, 4, 1), 1)
	judyAIS := ev("cev-judy-ais", judy, "account_information_sharing", "budget-app", ymd(2026, 1, 1), 1)
	judyAIS.Expires = timep(ymd(2026, 6, 30))
	return []Event{
		ev("cev-alice-advice", alice, "financial_advice", "advisor-portal", ymd(2026, 3, 1), 2),
		aliceAIS, daveForCarol, carolHerself, heidiMarketing, judyAIS,
	}
}

// TestLedgerNorthbank imports the scenario's consents and checks them on
// 2026-11-28, with the scenario's delegations behind a hand-written
// checker.
func TestLedgerNorthbank(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newLenv(t, st, sfx)
		ctx := context.Background()
		alice, carol, dave, heidi, ivan, judy := e.user("alice"), e.user("carol"), e.user("dave"), e.user("heidi"), e.user("ivan"), e.user("judy")
		e.dels.add("guardian-carol-dave"+sfx, fakeDelegation{principal: carol, agent: dave, from: ymd(2011, 6, 15), until: ymd(2029, 6, 15), statutory: true})
		seed := northbankSeed(sfx)
		if err := e.l.Import(ctx, seed); err != nil {
			t.Fatal(err)
		}
		if err := e.l.ImportActivity(ctx, map[string]time.Time{heidi.String(): ymd(2023, 1, 10)}); err != nil {
			t.Fatal(err)
		}
		head := e.l.Head()
		if err := e.l.Import(ctx, seed); err != nil || e.l.Head() != head {
			t.Errorf("Import twice: %v, head %d → %d (it should append nothing)", err, head, e.l.Head())
		}
		if h, _ := e.l.History(ctx, judy); len(h) != 1 || !h[0].RecordedAt.Equal(ymd(2026, 1, 1)) {
			t.Errorf("judy's seeded history: %+v (RecordedAt defaults to At)", h)
		}
		carolBorn := ymd(2011, 6, 15)
		type want struct {
			allowed bool
			reason  string
			grant   string
		}
		check := func(name string, q CheckQuery, w want) {
			t.Helper()
			q.Now = ledgerToday
			res, err := e.l.Check(ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if res.Allowed != w.allowed || res.Reason != w.reason || (w.grant != "" && res.GrantID != w.grant) || res.Position != e.l.Head() {
				t.Errorf("%s: %+v; want allowed=%v reason=%q grant=%q position=%d", name, res, w.allowed, w.reason, w.grant, e.l.Head())
			}
		}
		check("alice: financial_advice via advisor-portal", CheckQuery{Subject: alice, Purpose: "financial_advice", Application: "advisor-portal", Jurisdiction: "DE"}, want{true, "", "cev-alice-advice" + sfx})
		check("alice: financial_advice via marketing-hub", CheckQuery{Subject: alice, Purpose: "financial_advice", Application: "marketing-hub", Jurisdiction: "DE"}, want{false, ReasonPurposeNotAllowed, ""})
		check("alice: account_information_sharing via budget-app", CheckQuery{Subject: alice, Purpose: "account_information_sharing", Application: "budget-app", Jurisdiction: "DE"}, want{true, "", "cev-alice-ais" + sfx})
		carolQ := CheckQuery{Subject: carol, Purpose: "marketing", Application: "marketing-hub", Jurisdiction: "DE", BirthDate: &carolBorn}
		check("carol: marketing on dave's grant", carolQ, want{true, "", "cev-carol-by-dave" + sfx})
		calls := e.dels.calls.Load()
		check("carol: marketing again", carolQ, want{true, "", "cev-carol-by-dave" + sfx})
		if n := e.dels.calls.Load() - calls; n != 0 {
			t.Errorf("the guardian check of a known event asked the delegations %d times (cache per event id)", n)
		}
		check("heidi: marketing, dormant", CheckQuery{Subject: heidi, Purpose: "marketing", Application: "marketing-hub", Jurisdiction: "DE"}, want{false, ReasonRevalidationRequired, ""})
		check("judy: account_information_sharing expired", CheckQuery{Subject: judy, Purpose: "account_information_sharing", Application: "budget-app", Jurisdiction: "DE"}, want{false, ReasonConsentExpired, "cev-judy-ais" + sfx})
		ivanQ := CheckQuery{Subject: ivan, Purpose: "marketing", Application: "marketing-hub", Jurisdiction: "US-CA"}
		check("ivan: marketing, opt-out default", ivanQ, want{true, "", ""})

		// ivan opts out; dave ends his grant for carol; alice withdraws
		// financial_advice: each denies on the very next check.
		if _, _, err := e.l.Refuse(ctx, ChoiceRequest{Application: "marketing-hub", Subject: ivan, Purpose: "marketing", Jurisdiction: "US-CA", Channel: "web"}); err != nil {
			t.Fatal(err)
		}
		check("ivan: marketing after opting out", ivanQ, want{false, ReasonConsentWithdrawn, ""})
		if _, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "marketing-hub", Subject: carol, Actor: dave, Delegation: "guardian-carol-dave" + sfx, GrantID: "cev-carol-by-dave" + sfx}); err != nil {
			t.Fatal(err)
		}
		check("carol: marketing on her own grant only", carolQ, want{false, ReasonConsentInvalidMinor, "cev-carol-own" + sfx})
		if _, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "mobile-banking", Subject: alice, Purpose: "financial_advice"}); err != nil {
			t.Fatal(err)
		}
		check("alice: financial_advice after withdrawing", CheckQuery{Subject: alice, Purpose: "financial_advice", Application: "advisor-portal", Jurisdiction: "DE"}, want{false, ReasonConsentWithdrawn, ""})
		check("alice: account_information_sharing still", CheckQuery{Subject: alice, Purpose: "account_information_sharing", Application: "budget-app", Jurisdiction: "DE"}, want{true, "", "cev-alice-ais" + sfx})

		// The past is still there: on 2026-10-01 alice had both grants.
		past, err := e.l.StateAt(ctx, alice, ymd(2026, 10, 1))
		if err != nil || len(past.Grants) != 2 {
			t.Errorf("alice on 2026-10-01: %+v, %v", past, err)
		}
	})
}
