package delegation

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/relations"
)

// openSpiceDB starts an embedded SpiceDB (memory datastore) with the
// schema of testdata/delegation.zed.
func openSpiceDB(t *testing.T) (*relations.Store, map[string]map[string]bool) {
	t.Helper()
	zed, err := os.ReadFile("testdata/delegation.zed")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rs, err := relations.Open(ctx, relations.Config{Engine: relations.EngineMemory}, log)
	if err != nil {
		t.Fatalf("relations.Open: %v", err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	if _, err := rs.WriteSchema(ctx, string(zed)); err != nil {
		t.Fatalf("WriteSchema: %v", err)
	}
	names, err := relations.ParseSchemaPermissions(string(zed))
	if err != nil {
		t.Fatal(err)
	}
	return rs, KnownFromSchema(names)
}

func robj(r Ref) relations.Object { return relations.Object{Type: r.Type, ID: r.ID} }

// TestSpiceDBProjection: through a real SpiceDB, what the Service records
// is what CheckPermission answers.
func TestSpiceDBProjection(t *testing.T) {
	rs, known := openSpiceDB(t)
	st, sfx := openFileT(t)
	e := newEnv(t, st, sfx)
	e.svc.proj = NewSpiceDBProjector(rs, func() map[string]map[string]bool { return known }, e.clock.Now)
	ctx := context.Background()
	alice, bob, acme, erin, frank := e.user("alice"), e.user("bob"), e.org("acme"), e.user("erin"), e.user("frank")
	accAlice, accAcme := e.acc("acc-alice"), e.acc("acc-acme")
	if _, err := rs.WriteRelationships(ctx, []relations.Update{
		{Op: relations.OpTouch, Rel: relations.Relationship{Resource: robj(accAlice), Relation: "owner", Subject: robj(alice)}},
		{Op: relations.OpTouch, Rel: relations.Relationship{Resource: robj(accAcme), Relation: "owner", Subject: robj(acme)}},
	}); err != nil {
		t.Fatal(err)
	}
	check := func(who Ref, perm string, acc Ref, now time.Time, amt float64) string {
		t.Helper()
		cctx := map[string]any{CaveatCheckNowKey: now}
		if perm == "make_payment" { // view_statements takes no amount
			cctx[CaveatCheckAmountKey] = amt
		}
		r, _, err := rs.CheckPermission(ctx, relations.Check{Resource: robj(acc), Permission: perm, Subject: robj(who), Context: cctx})
		if err != nil {
			t.Fatalf("CheckPermission: %v", err)
		}
		switch {
		case r.Has:
			return "HAS"
		case r.Conditional:
			return "CONDITIONAL"
		}
		return "NO"
	}
	type want struct {
		who         Ref
		perm        string
		acc         Ref
		now         time.Time
		amount      float64
		has, reason string
	}
	expect := func(step string, wants ...want) {
		t.Helper()
		for _, w := range wants {
			if got := check(w.who, w.perm, w.acc, w.now, w.amount); got != w.has {
				t.Errorf("%s: %s %s %s (%s, amount %v): %s, want %s", step, w.who, w.perm, w.acc, w.reason, w.amount, got, w.has)
			}
		}
	}
	relsOf := func(id string) int {
		t.Helper()
		a, err := rs.ReadRelationships(ctx, relations.Filter{ResourceType: DelegationType, ResourceID: id})
		if err != nil {
			t.Fatal(err)
		}
		b, err := rs.ReadRelationships(ctx, relations.Filter{SubjectType: DelegationType, SubjectID: id, SubjectRelation: RelationAgent})
		if err != nil {
			t.Fatal(err)
		}
		return len(a) + len(b)
	}

	// bob's power of attorney from alice: nothing until he accepts.
	poa, token, err := e.svc.Offer(ctx, OfferRequest{By: as(alice), Principal: alice, Agent: bob, Basis: BasisPowerOfAttorney,
		Source: SourceSelfDeclared, Scope: []string{"view_statements", "make_payment", "share_account_information"},
		Constraints: Constraints{MaxAmount: amount(1000), Currency: "EUR"},
		ValidFrom:   date(2026, 1, 1), ValidUntil: date(2030, 12, 31)})
	if err != nil || token == "" {
		t.Fatalf("Offer: %v (token %q)", err, token)
	}
	expect("offered", want{bob, "view_statements", accAlice, today, 0, "NO", "not accepted"})
	if n := relsOf(poa.ID); n != 0 {
		t.Errorf("offered: %d relationships", n)
	}
	if _, token, err = e.svc.Accept(ctx, poa.ID, as(bob)); err != nil || token == "" {
		t.Fatalf("Accept: %v (token %q)", err, token)
	}
	// principal, agent, delegate_view_statements, delegate_make_payment:
	// share_account_information is not in the schema and is skipped.
	if n := relsOf(poa.ID); n != 4 {
		t.Errorf("accepted: %d relationships, want 4", n)
	}
	expect("accepted",
		want{bob, "view_statements", accAlice, today, 0, "HAS", "active"},
		want{bob, "make_payment", accAlice, today, 250, "HAS", "within the limit"},
		want{bob, "make_payment", accAlice, today, 1500, "NO", "over the limit"},
		want{bob, "view_statements", accAlice, date(2031, 1, 1), 0, "NO", "after the window"},
		want{bob, "view_statements", accAlice, date(2025, 6, 1), 0, "NO", "before the window"},
		want{bob, "view_statements", accAcme, today, 0, "NO", "not alice's account"},
		want{alice, "make_payment", accAlice, today, 1e6, "HAS", "owner"},
	)
	if _, _, err := e.svc.Revoke(ctx, poa.ID, as(alice), "changed my mind"); err != nil {
		t.Fatal(err)
	}
	expect("revoked", want{bob, "view_statements", accAlice, today, 0, "NO", "revoked"})
	if n := relsOf(poa.ID); n != 0 {
		t.Errorf("revoked: %d relationships left", n)
	}

	// erin represents acme; frank views for acme through her.
	rep := e.offer(OfferRequest{By: register, Principal: acme, Agent: erin, Basis: BasisLegalRepresentative,
		Source: SourceRegister, Scope: []string{"*"}, ValidFrom: date(2025, 1, 1), ValidUntil: date(2031, 1, 1), MaxDepth: 1})
	sub := e.offer(OfferRequest{By: as(erin), Principal: acme, Agent: frank, Basis: BasisSubDelegation,
		Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2027, 1, 1), Parent: rep.ID})
	e.accept(sub.ID, frank)
	active := []want{
		{erin, "make_payment", accAcme, today, 1e6, "HAS", "legal representative, every action"},
		{frank, "view_statements", accAcme, today, 0, "HAS", "sub-delegation"},
	}
	expect("representation", append(active, want{frank, "make_payment", accAcme, today, 1, "NO", "not in the sub-delegation's scope"})...)
	if _, _, err := e.svc.Suspend(ctx, rep.ID, register, "audit"); err != nil {
		t.Fatal(err)
	}
	expect("erin suspended",
		want{erin, "make_payment", accAcme, today, 1, "NO", "suspended"},
		want{frank, "view_statements", accAcme, today, 0, "NO", "parent suspended"})
	if _, _, err := e.svc.Resume(ctx, rep.ID, register); err != nil {
		t.Fatal(err)
	}
	expect("erin resumed", active...)
	// Reconcile on a store that already agrees changes nothing.
	if n, err := e.svc.Reconcile(ctx); err != nil || n != 3 {
		t.Errorf("Reconcile = %d %v", n, err)
	}
	expect("reconciled", active...)
	if _, _, err := e.svc.Revoke(ctx, rep.ID, register, "removed from the register"); err != nil {
		t.Fatal(err)
	}
	expect("erin revoked",
		want{erin, "make_payment", accAcme, today, 1, "NO", "revoked"},
		want{frank, "view_statements", accAcme, today, 0, "NO", "parent revoked"})
	if n := relsOf(sub.ID); n != 0 {
		t.Errorf("frank's relationships after the cascade: %d", n)
	}
}

func TestRelationships(t *testing.T) {
	d := Delegation{
		ID: "dlg-1", Principal: Ref{"organisation", "acme"}, Agent: Ref{"user", "frank"}, Parent: "dlg-0",
		Scope: []string{"view_statements", "*"}, Resources: []Ref{{"account", "a1"}, {"account", "a2"}},
		Constraints: Constraints{MaxAmount: amount(99.5)},
		ValidFrom:   date(2026, 1, 1), ValidUntil: date(2027, 1, 1),
	}
	var got []string
	for _, r := range Relationships(d, nil) {
		got = append(got, r.String()+jsonOf(t, r.CaveatContext))
	}
	want := []string{
		`delegation:dlg-1#principal@organisation:acme` + "null",
		`delegation:dlg-1#agent@user:frank[delegation_window]{"valid_from":"2026-01-01T00:00:00Z","valid_until":"2027-01-01T00:00:00Z"}`,
		`delegation:dlg-1#parent@delegation:dlg-0` + "null",
		`account:a1#delegate_view_statements@delegation:dlg-1#agent[amount_limit]{"max_amount":99.5}`,
		`account:a2#delegate_view_statements@delegation:dlg-1#agent[amount_limit]{"max_amount":99.5}`,
		`account:a1#delegate_any@delegation:dlg-1#agent[amount_limit]{"max_amount":99.5}`,
		`account:a2#delegate_any@delegation:dlg-1#agent[amount_limit]{"max_amount":99.5}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Relationships =\n%v\nwant\n%v", got, want)
	}
	// Only what the schema declares.
	known := map[string]map[string]bool{"delegation": {"agent": true}, "account": {"delegate_any": true}}
	if n := len(Relationships(d, known)); n != 3 {
		t.Errorf("with a partial schema: %d relationships, want 3", n)
	}
	// The amount limit only where the schema takes it.
	caveats := map[string]map[string]map[string]bool{"account": {
		"delegate_view_statements": {"": true},
		"delegate_any":             {"": true, CaveatAmountLimit: true},
	}}
	got = nil
	for _, r := range relationships(d, nil, caveats)[3:] {
		got = append(got, r.String())
	}
	want = []string{
		"account:a1#delegate_view_statements@delegation:dlg-1#agent",
		"account:a2#delegate_view_statements@delegation:dlg-1#agent",
		"account:a1#delegate_any@delegation:dlg-1#agent[amount_limit]",
		"account:a2#delegate_any@delegation:dlg-1#agent[amount_limit]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("with caveats from the schema =\n%v\nwant\n%v", got, want)
	}
}

// TestProjectWithoutDelegationSchema: a schema without delegations means
// there is nothing to write, not an error.
func TestProjectWithoutDelegationSchema(t *testing.T) {
	p := NewSpiceDBProjector(nil, func() map[string]map[string]bool { return map[string]map[string]bool{"user": {}} }, nil)
	token, err := p.Project(context.Background(), Delegation{ID: "dlg-1", Status: StatusActive, ValidUntil: date(2100, 1, 1)})
	if err != nil || token != "" {
		t.Errorf("Project = %q %v", token, err)
	}
}
