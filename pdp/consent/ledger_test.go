package consent

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestLedgerWithdrawDeniesNextCheck(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newLenv(t, st, sfx)
		ctx := context.Background()
		alice := e.user("alice")
		g, receipt, err := e.l.Give(ctx, advice(alice))
		if err != nil {
			t.Fatal(err)
		}
		claims, err := VerifyReceipt(e.l.PublicKey(), receipt)
		if err != nil || claims.ConsentReceiptID != g.ID {
			t.Errorf("receipt of the grant: %+v, %v", claims, err)
		}
		res := e.check(alice, "financial_advice", "advisor-portal", "DE")
		if !res.Allowed || res.GrantID != g.GrantID || res.Position < g.Position {
			t.Fatalf("after Give: %+v", res)
		}
		evs, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "mobile-banking", Subject: alice, Purpose: "financial_advice"})
		if err != nil || len(evs) != 1 {
			t.Fatalf("Withdraw = %v, %v", evs, err)
		}
		res = e.check(alice, "financial_advice", "advisor-portal", "DE")
		if res.Allowed || res.Reason != ReasonConsentWithdrawn || res.Position < evs[0].Position {
			t.Errorf("the very next Check after Withdraw (position %d): %+v", evs[0].Position, res)
		}
		res, err = e.l.CheckAt(ctx, CheckQuery{Subject: alice, Purpose: "financial_advice", Application: "advisor-portal", Jurisdiction: "DE"}, evs[0].Position)
		if err != nil || res.Allowed {
			t.Errorf("CheckAt(withdrawal position) = %+v, %v", res, err)
		}
		if _, err := e.l.CheckAt(ctx, CheckQuery{Subject: alice, Purpose: "financial_advice"}, evs[0].Position+1000); !errors.Is(err, ErrStale) {
			t.Errorf("CheckAt(a position beyond the head) = %v, want ErrStale", err)
		}
	})
}

// TestLedgerValidation: every refusal of a write, its status, and that
// nothing was written.
func TestLedgerValidation(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newLenv(t, st, sfx)
		ctx := context.Background()
		reg := testRegistry(t)
		reg.Purposes["newsletter"] = Purpose{ID: "newsletter", Version: 1, Applications: []string{"marketing-hub"},
			Rules: map[string]Rule{"DE": {Basis: BasisConsent, Default: DefaultOptIn}}}
		e.reg.Store(reg)
		alice, carol, dave := e.user("alice"), e.user("carol"), e.user("dave")
		e.dels.add("guardian-old"+sfx, fakeDelegation{principal: carol, agent: dave, from: ymd(2011, 6, 15), until: ymd(2020, 1, 1), statutory: true})
		ended := e.give(advice(alice))
		if _, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "advisor-portal", Subject: alice, GrantID: ended.GrantID}); err != nil {
			t.Fatal(err)
		}
		with := func(f func(*ChoiceRequest)) ChoiceRequest { r := advice(alice); f(&r); return r }
		give := func(r ChoiceRequest) func() error {
			return func() error { _, _, err := e.l.Give(ctx, r); return err }
		}
		withdraw := func(r WithdrawRequest) func() error {
			return func() error {
				r.Subject = cmpOr(r.Subject, alice)
				_, err := e.l.Withdraw(ctx, r)
				return err
			}
		}
		tests := []struct {
			name   string
			do     func() error
			status int
			code   string
			msg    string
		}{
			{"unknown purpose", give(with(func(r *ChoiceRequest) { r.Purpose = "astrology" })), 422, CodeUnknownPurpose, `unknown purpose "astrology"`},
			{"application may not process for the purpose", give(with(func(r *ChoiceRequest) { r.Application = "marketing-hub" })), 403, CodeForbidden, `application "marketing-hub" may not process for purpose "financial_advice"`},
			{"grant for another application", give(with(func(r *ChoiceRequest) { r.Applications = []string{"advisor-portal", "budget-app"} })), 422, CodeInvalid, `application "budget-app" may not process`},
			{"no rule for the jurisdiction", give(ChoiceRequest{Application: "marketing-hub", Subject: alice, Purpose: "newsletter", Jurisdiction: "US-CA", Notice: Notice{URI: "n", Version: 1}}), 422, CodeNoRule, `no rule for jurisdiction "US-CA"`},
			{"no jurisdiction", give(with(func(r *ChoiceRequest) { r.Jurisdiction = "" })), 422, CodeInvalid, "jurisdiction is required"},
			{"basis is contract", give(ChoiceRequest{Application: "mobile-banking", Subject: alice, Purpose: "account_servicing", Jurisdiction: "DE", Notice: Notice{URI: "n", Version: 1}}), 422, CodeNotConsent, `purpose "account_servicing" in DE is processed on contract; there is no consent to record`},
			{"expires after max_validity", give(ChoiceRequest{Application: "budget-app", Subject: alice, Purpose: "account_information_sharing", Jurisdiction: "DE", Notice: Notice{URI: "n", Version: 1}, At: ymd(2026, 9, 1), Expires: timep(ymd(2027, 3, 1))}), 422, CodeTooLong, "max_validity (180d)"},
			{"expires before at", give(with(func(r *ChoiceRequest) { r.Expires = timep(ledgerToday.Add(-time.Hour)) })), 422, CodeInvalid, "is not after at"},
			{"no notice", give(with(func(r *ChoiceRequest) { r.Notice = Notice{} })), 422, CodeInvalid, "notice.uri and notice.version are required"},
			{"notice too old", give(with(func(r *ChoiceRequest) { r.Notice.Version = 1 })), 422, CodeInvalid, "older than version 2"},
			{"at in the future", give(with(func(r *ChoiceRequest) { r.At = ledgerToday.Add(time.Hour) })), 422, CodeInvalid, "in the future"},
			{"no application", give(with(func(r *ChoiceRequest) { r.Application = "" })), 422, CodeInvalid, "calling application is required"},
			{"no subject", give(with(func(r *ChoiceRequest) { r.Subject = Ref{} })), 422, CodeInvalid, "subject.type and subject.id are required"},
			{"representative without a delegation", give(with(func(r *ChoiceRequest) { r.Subject, r.Actor = carol, dave })), 422, CodeNoDelegation, "a representative needs a delegation in force"},
			{"representative under an expired delegation", give(with(func(r *ChoiceRequest) { r.Subject, r.Actor, r.Delegation = carol, dave, "guardian-old"+sfx })), 422, CodeNoDelegation, "a representative needs a delegation in force"},
			{"delegation without a representative", give(with(func(r *ChoiceRequest) { r.Delegation = "guardian-old" + sfx })), 422, CodeInvalid, "the actor is the subject"},
			{"refusal with an expiry", func() error {
				_, _, err := e.l.Refuse(ctx, with(func(r *ChoiceRequest) { r.Expires = timep(ledgerToday.Add(time.Hour)) }))
				return err
			}, 422, CodeInvalid, "a refusal stands"},
			{"withdraw an unknown grant", withdraw(WithdrawRequest{Application: "advisor-portal", GrantID: "cev-nope"}), 404, CodeNotFound, "has no grant cev-nope"},
			{"withdraw a grant already ended", withdraw(WithdrawRequest{Application: "advisor-portal", GrantID: ended.GrantID}), 422, CodeEnded, "has already ended: withdrawn at"},
			{"withdraw a purpose with nothing in force", withdraw(WithdrawRequest{Application: "advisor-portal", Purpose: "financial_advice"}), 422, CodeEnded, `no grant of purpose "financial_advice" is in force`},
			{"withdraw all with nothing in force", withdraw(WithdrawRequest{Application: "advisor-portal", All: true}), 422, CodeEnded, "no grant is in force"},
			{"withdraw an unknown purpose", withdraw(WithdrawRequest{Application: "advisor-portal", Purpose: "astrology"}), 422, CodeUnknownPurpose, "unknown purpose"},
			{"withdraw nothing named", withdraw(WithdrawRequest{Application: "advisor-portal"}), 422, CodeInvalid, "name what to withdraw"},
			{"withdraw all and a purpose", withdraw(WithdrawRequest{Application: "advisor-portal", All: true, Purpose: "marketing"}), 422, CodeInvalid, "leave purpose and grant_id out"},
			{"revoke without a reason", withdraw(WithdrawRequest{Application: "advisor-portal", Purpose: "financial_advice", Revoke: true}), 422, CodeInvalid, "a revocation needs a reason"},
			{"revoke from an application of another purpose", withdraw(WithdrawRequest{Application: "budget-app", Purpose: "financial_advice", Revoke: true, Reason: "court order"}), 403, CodeForbidden, "may not process"},
			{"renew an unknown grant", func() error {
				_, _, err := e.l.Renew(ctx, RenewRequest{Application: "advisor-portal", Subject: alice, GrantID: "cev-nope", Notice: Notice{URI: "n", Version: 2}})
				return err
			}, 404, CodeNotFound, "has no grant"},
			{"renew a grant already ended", func() error {
				_, _, err := e.l.Renew(ctx, RenewRequest{Application: "advisor-portal", Subject: alice, GrantID: ended.GrantID, Notice: Notice{URI: "n", Version: 2}})
				return err
			}, 422, CodeEnded, "give consent anew"},
		}
		before, _ := st.Head(ctx)
		for _, tt := range tests {
			err := tt.do()
			var re *RuleError
			if !errors.As(err, &re) || re.Code != tt.code || !strings.Contains(err.Error(), tt.msg) || statusOf(err) != tt.status {
				t.Errorf("%s: error %v (status %d), want %s %d naming %q", tt.name, err, statusOf(err), tt.code, tt.status, tt.msg)
			}
			if head, _ := st.Head(ctx); head != before {
				t.Errorf("%s: the ledger head moved from %d to %d: something was written", tt.name, before, head)
			}
		}
		for _, who := range []Ref{carol, dave} {
			if h, _ := e.l.History(ctx, who); len(h) != 0 {
				t.Errorf("history of %s after refused writes: %v", who, h)
			}
		}
		// No registry: every write and every check is refused.
		e.reg.Store(nil)
		if _, _, err := e.l.Give(ctx, advice(alice)); !errors.Is(err, ErrNoRegistry) || statusOf(err) != http.StatusInternalServerError {
			t.Errorf("Give without a registry = %v", err)
		}
		if _, err := e.l.Check(ctx, CheckQuery{Subject: alice, Purpose: "financial_advice"}); !errors.Is(err, ErrNoRegistry) {
			t.Errorf("Check without a registry = %v", err)
		}
	})
}

func cmpOr(r, def Ref) Ref {
	if r == (Ref{}) {
		return def
	}
	return r
}

// TestLedgerWithdrawScopes: one grant, then a purpose, then all.
func TestLedgerWithdrawScopes(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newLenv(t, st, sfx)
		ctx := context.Background()
		ivan := e.user("ivan")
		mk := func() ChoiceRequest {
			return ChoiceRequest{Application: "marketing-hub", Subject: ivan, Purpose: "marketing", Jurisdiction: "FR",
				Notice: Notice{URI: "https://northbank.example/privacy/marketing", Version: 3}}
		}
		m1, m2 := e.give(mk()), e.give(mk())
		a := e.give(advice(ivan))
		s := e.give(ChoiceRequest{Application: "budget-app", Subject: ivan, Purpose: "account_information_sharing", Jurisdiction: "FR",
			Notice: Notice{URI: "https://northbank.example/privacy/ais", Version: 1}})
		grants := func() []string {
			st, err := e.l.Current(ctx, ivan)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, g := range st.Grants {
				ids = append(ids, g.ID)
			}
			return ids
		}
		if got := grants(); jsonOf(t, got) != jsonOf(t, []string{m1.ID, m2.ID, a.ID, s.ID}) {
			t.Fatalf("grants = %v", got)
		}
		if s.Expires == nil || !s.Expires.Equal(ledgerToday.Add(180*24*time.Hour)) {
			t.Errorf("a grant without an expiry gets max_validity: %v", s.Expires)
		}

		one, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "marketing-hub", Subject: ivan, GrantID: m1.GrantID, Reason: "too many mails"})
		if err != nil || len(one) != 1 || one[0].GrantID != m1.GrantID || one[0].Type != EventWithdrawn {
			t.Fatalf("withdraw one grant = %+v, %v", one, err)
		}
		if got := grants(); jsonOf(t, got) != jsonOf(t, []string{m2.ID, a.ID, s.ID}) {
			t.Errorf("after withdrawing one grant: %v", got)
		}
		if res := e.check(ivan, "marketing", "marketing-hub", "FR"); !res.Allowed || res.GrantID != m2.GrantID {
			t.Errorf("marketing rests on the other grant: %+v", res)
		}
		e.clock.Add(time.Minute)
		purpose, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "marketing-hub", Subject: ivan, Purpose: "marketing"})
		if err != nil || len(purpose) != 1 || purpose[0].GrantID != "" || purpose[0].Jurisdiction != "FR" {
			t.Fatalf("withdraw a purpose = %+v, %v", purpose, err)
		}
		if got := grants(); jsonOf(t, got) != jsonOf(t, []string{a.ID, s.ID}) {
			t.Errorf("after withdrawing marketing: %v", got)
		}
		all, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "mobile-banking", Subject: ivan, All: true})
		if err != nil || len(all) != 2 || all[0].Purpose != "financial_advice" || all[1].Purpose != "account_information_sharing" || all[0].Position >= all[1].Position {
			t.Fatalf("withdraw all = %+v, %v", all, err)
		}
		if got := grants(); len(got) != 0 {
			t.Errorf("after withdrawing all: %v", got)
		}
		for _, p := range []struct{ purpose, app string }{{"marketing", "marketing-hub"}, {"financial_advice", "advisor-portal"}, {"account_information_sharing", "budget-app"}} {
			if res := e.check(ivan, p.purpose, p.app, "FR"); res.Allowed || res.Reason != ReasonConsentWithdrawn {
				t.Errorf("%s after withdrawing all: %+v", p.purpose, res)
			}
		}
		// A revocation is someone else's, and says so.
		b := e.give(advice(ivan))
		rev, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "advisor-portal", Subject: ivan, GrantID: b.GrantID, Revoke: true, Reason: "advisor contract ended"})
		if err != nil || rev[0].Type != EventRevoked || rev[0].Actor != (Ref{"application", "advisor-portal"}) {
			t.Errorf("revoke = %+v, %v", rev, err)
		}
	})
}

// TestLedgerStateAt: the past is recomputed from the events.
func TestLedgerStateAt(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newLenv(t, st, sfx)
		ctx := context.Background()
		alice := e.user("alice")
		t0 := e.clock.Now()
		g := e.give(advice(alice))
		e.clock.Add(time.Hour)
		w, err := e.l.Withdraw(ctx, WithdrawRequest{Application: "advisor-portal", Subject: alice, GrantID: g.GrantID})
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Hour)
		e.reg.Store(testRegistry(t)) // the registry may change; the past does not
		r := e.give(ChoiceRequest{Application: "marketing-hub", Subject: alice, Purpose: "marketing", Jurisdiction: "DE",
			Notice: Notice{URI: "n", Version: 1}})
		refused, _, err := e.l.Refuse(ctx, ChoiceRequest{Application: "marketing-hub", Subject: alice, Purpose: "marketing", Jurisdiction: "DE"})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			at     time.Time
			grants []string
			pos    int64
		}{
			{t0.Add(-time.Second), nil, 0},
			{t0, []string{g.GrantID}, g.Position},
			{t0.Add(30 * time.Minute), []string{g.GrantID}, g.Position},
			{t0.Add(time.Hour), nil, w[0].Position},
			{t0.Add(3 * time.Hour), nil, refused.Position},
		}
		for _, tt := range tests {
			s, err := e.l.StateAt(ctx, alice, tt.at)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, g := range s.Grants {
				ids = append(ids, g.ID)
			}
			if jsonOf(t, ids) != jsonOf(t, tt.grants) || s.Position != tt.pos {
				t.Errorf("StateAt(%s) = grants %v position %d; want %v %d", tt.at.Format(time.TimeOnly), ids, s.Position, tt.grants, tt.pos)
			}
		}
		s, _ := e.l.StateAt(ctx, alice, t0.Add(3*time.Hour))
		if s.Refusals["marketing"] != refused.Position {
			t.Errorf("refusals = %v, want marketing at %d (it ended grant %s)", s.Refusals, refused.Position, r.GrantID)
		}
		h, err := e.l.History(ctx, alice)
		if err != nil || len(h) != 4 || h[0].ID != g.ID || h[3].ID != refused.ID {
			t.Errorf("History = %d events, %v", len(h), err)
		}
	})
}

func TestLedgerRenewAndReceipts(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newLenv(t, st, sfx)
		ctx := context.Background()
		judy := e.user("judy")
		ais := ChoiceRequest{Application: "budget-app", Subject: judy, Purpose: "account_information_sharing", Jurisdiction: "DE",
			Notice: Notice{URI: "https://northbank.example/privacy/ais", Version: 1}, At: ymd(2026, 9, 1)}
		g := e.give(ais)
		if !g.Expires.Equal(ymd(2027, 2, 28)) {
			t.Errorf("expires = %v, want 2027-02-28 (180 days)", g.Expires)
		}
		r, receipt, err := e.l.Renew(ctx, RenewRequest{Application: "budget-app", Subject: judy, GrantID: g.GrantID,
			Notice: Notice{URI: "https://northbank.example/privacy/ais", Version: 2}})
		if err != nil {
			t.Fatal(err)
		}
		if r.Type != EventRenewed || !r.Expires.Equal(ledgerToday.Add(180*24*time.Hour)) || r.Notice.Version != 2 {
			t.Errorf("renewed = %+v", r)
		}
		s, _ := e.l.Current(ctx, judy)
		if len(s.Grants) != 1 || !s.Grants[0].Expires.Equal(*r.Expires) || s.Grants[0].Position != r.Position || !s.Grants[0].GivenAt.Equal(ymd(2026, 9, 1)) {
			t.Errorf("grant after renewal = %+v", s.Grants)
		}
		if _, _, err := e.l.Renew(ctx, RenewRequest{Application: "budget-app", Subject: judy, GrantID: g.GrantID,
			Notice: Notice{URI: "n", Version: 2}, Expires: timep(ledgerToday.Add(181 * 24 * time.Hour))}); statusOf(err) != 422 {
			t.Errorf("renew beyond max_validity = %v", err)
		}
		again, err := e.l.Receipt(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		c1, err1 := VerifyReceipt(e.l.PublicKey(), receipt)
		c2, err2 := VerifyReceipt(e.l.PublicKey(), again)
		if err1 != nil || err2 != nil || jsonOf(t, c1) != jsonOf(t, c2) {
			t.Errorf("Receipt re-signs other claims:\n%s\n%s\n%v %v", jsonOf(t, c1), jsonOf(t, c2), err1, err2)
		}
		if _, err := e.l.Receipt(ctx, "cev-missing"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Receipt(missing) = %v", err)
		}
	})
}

// TestLedgerActivity: Touch is in memory at once, in the store after a
// flush, and never moves back.
func TestLedgerActivity(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newLenv(t, st, sfx)
		ctx := context.Background()
		heidi := e.user("heidi")
		e.l.Touch(heidi, ymd(2025, 1, 1))
		e.l.Touch(heidi, ymd(2024, 1, 1))
		if _, ok, _ := st.Activity(ctx, heidi); ok {
			t.Error("Touch wrote to the store before a flush")
		}
		if err := e.l.FlushActivity(ctx); err != nil {
			t.Fatal(err)
		}
		if at, ok, err := st.Activity(ctx, heidi); !ok || !at.Equal(ymd(2025, 1, 1)) {
			t.Errorf("after flush: %v, %v, %v", at, ok, err)
		}
		if err := e.l.ImportActivity(ctx, map[string]time.Time{heidi.String(): ymd(2023, 1, 10)}); err != nil {
			t.Fatal(err)
		}
		if at, _, _ := st.Activity(ctx, heidi); !at.Equal(ymd(2025, 1, 1)) {
			t.Errorf("ImportActivity moved activity back to %v", at)
		}
		if err := e.l.ImportActivity(ctx, map[string]time.Time{":x": ledgerToday}); err == nil {
			t.Error("ImportActivity with a bad subject: no error")
		}
	})
}

func TestNewLedgerErrors(t *testing.T) {
	if _, err := NewLedger(LedgerConfig{}); err == nil {
		t.Error("NewLedger without a store: no error")
	}
	st, _ := openFileT(t)
	if _, err := NewLedger(LedgerConfig{Store: st, SigningKey: []byte("short")}); err == nil {
		t.Error("NewLedger with a bad key: no error")
	}
	l, err := NewLedger(LedgerConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.PublicKey()) != 32 {
		t.Error("no ephemeral key")
	}
	_ = l.Close()
	if _, _, err := l.Give(context.Background(), advice(Ref{"user", "a"})); !errors.Is(err, ErrClosed) {
		t.Errorf("Give after Close = %v", err)
	}
}
