package delegation

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// northbank is the cast of the Northbank example, by name.
type northbank struct {
	e                                    *env
	bob, oscar, peggy, dave, erin, frank Delegation
}

// seedNorthbank records the cast through the Service, moving the clock
// back for what happened in the past, and leaves the clock at today.
func seedNorthbank(t testing.TB, e *env) *northbank {
	t.Helper()
	alice, carol, acme := e.user("alice"), e.user("carol"), e.org("acme")
	n := &northbank{e: e}
	// oscar held a power of attorney from alice through 2024 and 2025.
	e.clock.Set(date(2023, 12, 15))
	oscar := e.offer(OfferRequest{By: as(alice), Principal: alice, Agent: e.user("oscar"), Basis: BasisPowerOfAttorney,
		Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidFrom: date(2024, 1, 1), ValidUntil: date(2025, 12, 31)})
	n.oscar = e.accept(oscar.ID, e.user("oscar"))

	e.clock.Set(today)
	bob := e.offer(OfferRequest{By: as(alice), Principal: alice, Agent: e.user("bob"), Basis: BasisPowerOfAttorney,
		Source: SourceSelfDeclared, Scope: []string{"view_statements", "make_payment"},
		Constraints: Constraints{MaxAmount: amount(1000), Currency: "EUR"},
		ValidFrom:   date(2026, 1, 1), ValidUntil: date(2030, 12, 31)})
	n.bob = e.accept(bob.ID, e.user("bob"))
	n.peggy = e.offer(OfferRequest{By: as(alice), Principal: alice, Agent: e.user("peggy"), Basis: BasisPowerOfAttorney,
		Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2027, 6, 30)})
	n.dave = e.offer(OfferRequest{By: register, Principal: carol, Agent: e.user("dave"), Basis: BasisStatutoryGuardian,
		Source: SourceRegister, Scope: []string{"*"}, ValidFrom: date(2019, 5, 1), ValidUntil: date(2032, 5, 1)})
	n.erin = e.offer(OfferRequest{By: register, Principal: acme, Agent: e.user("erin"), Basis: BasisLegalRepresentative,
		Source: SourceRegister, Scope: []string{"*"}, ValidFrom: date(2025, 1, 1), ValidUntil: date(2031, 1, 1), MaxDepth: 1})
	frank := e.offer(OfferRequest{By: as(e.user("erin")), Principal: acme, Agent: e.user("frank"), Basis: BasisSubDelegation,
		Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2027, 1, 1), Parent: n.erin.ID})
	n.frank = e.accept(frank.ID, e.user("frank"))
	return n
}

func TestResolveNorthbank(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newEnv(t, st, sfx)
		n := seedNorthbank(t, e)
		ctx := context.Background()
		alice, carol, acme := e.user("alice"), e.user("carol"), e.org("acme")
		accAlice, accCarol, accAcme := e.acc("acc-alice"), e.acc("acc-carol"), e.acc("acc-acme")
		pay := func(agent, principal, acc Ref, amt float64) Query {
			return Query{Actor: agent, Principal: principal, Action: "make_payment", Resource: acc, Amount: &amt, Currency: "EUR", Now: today}
		}
		view := func(agent, principal, acc Ref) Query {
			return Query{Actor: agent, Principal: principal, Action: "view_statements", Resource: acc, Now: today}
		}
		tests := []struct {
			name   string
			q      Query
			status string
			chain  []Delegation
			basis  Basis
			detail string
		}{
			{"bob pays 250 for alice", pay(e.user("bob"), alice, accAlice, 250), ProofActive, []Delegation{n.bob}, BasisPowerOfAttorney, ""},
			{"bob pays 1000, the limit", pay(e.user("bob"), alice, accAlice, 1000), ProofActive, []Delegation{n.bob}, BasisPowerOfAttorney, ""},
			{"bob pays 1500", pay(e.user("bob"), alice, accAlice, 1500), ProofOutOfScope, []Delegation{n.bob}, BasisPowerOfAttorney, "amount 1500 exceeds the limit 1000 EUR"},
			{"bob pays in USD", func() Query { q := pay(e.user("bob"), alice, accAlice, 10); q.Currency = "USD"; return q }(),
				ProofOutOfScope, []Delegation{n.bob}, BasisPowerOfAttorney, "currency USD is not EUR"},
			{"bob views", view(e.user("bob"), alice, accAlice), ProofActive, []Delegation{n.bob}, BasisPowerOfAttorney, ""},
			{"bob closes the account", Query{Actor: e.user("bob"), Principal: alice, Action: "close_account", Resource: accAlice, Now: today},
				ProofOutOfScope, []Delegation{n.bob}, BasisPowerOfAttorney, "action close_account is not in the scope"},
			{"bob before his window", func() Query { q := view(e.user("bob"), alice, accAlice); q.Now = date(2025, 12, 31); return q }(),
				ProofNotYetValid, []Delegation{n.bob}, BasisPowerOfAttorney, "not_yet_valid"},
			{"oscar", view(e.user("oscar"), alice, accAlice), ProofExpired, []Delegation{n.oscar}, BasisPowerOfAttorney, "is expired"},
			{"peggy", view(e.user("peggy"), alice, accAlice), ProofNotAccepted, []Delegation{n.peggy}, BasisPowerOfAttorney, "is offered"},
			{"dave for carol", pay(e.user("dave"), carol, accCarol, 5000), ProofActive, []Delegation{n.dave}, BasisStatutoryGuardian, ""},
			{"erin for acme", pay(e.user("erin"), acme, accAcme, 1e6), ProofActive, []Delegation{n.erin}, BasisLegalRepresentative, ""},
			{"frank views for acme", view(e.user("frank"), acme, accAcme), ProofActive, []Delegation{n.frank, n.erin}, BasisSubDelegation, ""},
			{"frank pays for acme", pay(e.user("frank"), acme, accAcme, 10), ProofOutOfScope, []Delegation{n.frank, n.erin}, BasisSubDelegation, "make_payment"},
			{"a stranger", view(e.user("mallory"), alice, accAlice), ProofNoDelegation, nil, "", ""},
			{"bob for carol", view(e.user("bob"), carol, accCarol), ProofNoDelegation, nil, "", ""},
			{"alice for herself", view(alice, alice, accAlice), ProofNoDelegation, nil, "", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p, err := e.svc.Resolve(ctx, tt.q)
				if err != nil {
					t.Fatal(err)
				}
				var chain []string
				for _, d := range tt.chain {
					chain = append(chain, d.ID)
				}
				if p.Status != tt.status || !slices.Equal(p.Chain, chain) || p.Basis != tt.basis || !strings.Contains(p.Detail, tt.detail) {
					t.Errorf("Resolve = %+v\nwant status %s chain %v basis %s detail ~%q", p, tt.status, chain, tt.basis, tt.detail)
				}
				if p.Allowed() != (tt.status == ProofActive) {
					t.Errorf("Allowed = %v", p.Allowed())
				}
				if len(tt.chain) > 0 && !slices.Contains(p.Considered, tt.chain[0].ID) {
					t.Errorf("Considered %v lacks %s", p.Considered, tt.chain[0].ID)
				}
			})
		}

		// erin's representation ends: frank's sub-delegation with it.
		if _, _, err := e.svc.Revoke(ctx, n.erin.ID, register, "removed from the commercial register"); err != nil {
			t.Fatal(err)
		}
		p, err := e.svc.Resolve(ctx, view(e.user("frank"), acme, accAcme))
		if err != nil || p.Status != ProofRevoked || !slices.Equal(p.Chain, []string{n.frank.ID}) {
			t.Errorf("frank after erin's revocation: %+v %v", p, err)
		}
		if got := e.get(n.frank.ID); got.Status != StatusRevoked {
			t.Errorf("frank's record %s after erin's revocation", got.Status)
		}
		// Now zero means the service's clock (today).
		if p, _ := e.svc.Resolve(ctx, Query{Actor: e.user("bob"), Principal: alice, Action: "view_statements", Resource: accAlice}); p.Status != ProofActive {
			t.Errorf("Resolve with the service's clock: %+v", p)
		}
	})
}

// TestResolveChoice: with several delegations from one principal to one
// agent, an active one wins; else the most informative refusal.
func TestResolveChoice(t *testing.T) {
	st, sfx := openFileT(t)
	e := newEnv(t, st, sfx)
	ctx := context.Background()
	alice, bob := e.user("alice"), e.user("bob")
	acc1, acc2 := e.acc("acc-1"), e.acc("acc-2")
	offer := func(scope string, resources []Ref, until time.Time) Delegation {
		return e.offer(OfferRequest{By: as(alice), Principal: alice, Agent: bob, Basis: BasisPowerOfAttorney,
			Source: SourceSelfDeclared, Scope: []string{scope}, Resources: resources, ValidFrom: date(2026, 1, 1), ValidUntil: until})
	}
	notAccepted := offer("view_statements", nil, date(2030, 1, 1))
	revoked := e.accept(offer("view_statements", nil, date(2030, 1, 1)).ID, bob)
	if _, _, err := e.svc.Revoke(ctx, revoked.ID, as(alice), ""); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(date(2026, 1, 2))
	expiring := e.accept(offer("view_statements", nil, date(2026, 11, 1)).ID, bob)
	e.clock.Set(today)
	suspended := e.accept(offer("view_statements", nil, date(2030, 1, 1)).ID, bob)
	if _, _, err := e.svc.Suspend(ctx, suspended.ID, as(alice), ""); err != nil {
		t.Fatal(err)
	}
	q := func(action string, acc Ref, now time.Time) Query {
		return Query{Actor: bob, Principal: alice, Action: action, Resource: acc, Now: now}
	}
	type step struct {
		name   string
		q      Query
		status string
		chosen *Delegation
	}
	check := func(steps []step) {
		t.Helper()
		all, _ := e.svc.List(ctx, Filter{Principal: &alice, Agent: &bob})
		var want []string
		for _, d := range all {
			want = append(want, d.ID)
		}
		slices.Sort(want)
		for _, tt := range steps {
			p, err := e.svc.Resolve(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if p.Status != tt.status || len(p.Chain) != 1 || p.Chain[0] != tt.chosen.ID {
				t.Errorf("%s: %+v, want %s via %s", tt.name, p, tt.status, tt.chosen.ID)
			}
			if !slices.Equal(p.Considered, want) {
				t.Errorf("%s: considered %v, want %v", tt.name, p.Considered, want)
			}
		}
	}
	check([]step{
		{"suspended beats expired, revoked, not accepted", q("view_statements", acc1, today), ProofSuspended, &suspended},
		{"suspended beats not yet valid", q("view_statements", acc1, date(2025, 6, 1)), ProofSuspended, &suspended},
	})
	if _, _, err := e.svc.Revoke(ctx, suspended.ID, as(alice), ""); err != nil {
		t.Fatal(err)
	}
	check([]step{
		{"expired beats revoked, not accepted", q("view_statements", acc1, today), ProofExpired, &expiring},
		{"not yet valid beats revoked, not accepted", q("view_statements", acc1, date(2025, 6, 1)), ProofNotYetValid, &expiring},
	})
	if _, _, err := e.svc.Revoke(ctx, expiring.ID, as(alice), ""); err != nil {
		t.Fatal(err)
	}
	check([]step{
		{"revoked beats not accepted (the oldest of two)", q("view_statements", acc1, today), ProofRevoked, &expiring},
	})
	onlyAcc1 := e.accept(offer("make_payment", []Ref{acc1}, date(2030, 1, 1)).ID, bob)
	check([]step{
		{"pay from acc-1", q("make_payment", acc1, today), ProofActive, &onlyAcc1},
		{"pay from acc-2: out of scope", q("make_payment", acc2, today), ProofOutOfScope, &onlyAcc1},
		{"view: out of scope beats expired", q("view_statements", acc1, today), ProofOutOfScope, &onlyAcc1},
	})
	_ = notAccepted
}

// BenchmarkResolve: the FileStore answers from memory.
func BenchmarkResolve(b *testing.B) {
	st, err := OpenFile(filepath.Join(b.TempDir(), "d.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	e := newEnv(b, st, "")
	seedNorthbank(b, e)
	ctx := context.Background()
	amt := 250.0
	for _, bm := range []struct {
		name string
		q    Query
	}{
		{"poa", Query{Actor: e.user("bob"), Principal: e.user("alice"), Action: "make_payment", Resource: e.acc("acc-alice"), Amount: &amt, Now: today}},
		{"sub-delegation", Query{Actor: e.user("frank"), Principal: e.org("acme"), Action: "view_statements", Resource: e.acc("acc-acme"), Now: today}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if p, err := e.svc.Resolve(ctx, bm.q); err != nil || p.Status != ProofActive {
					b.Fatalf("%+v %v", p, err)
				}
			}
		})
	}
}
