package delegation

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestStoreLineage: both stores answer the records of every pair and all
// their ancestors, each once; a missing parent ends the walk, a loop in
// the parents does not hang it, and other pairs' records stay out.
func TestStoreLineage(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		ctx := context.Background()
		u := func(id string) Ref { return Ref{"user", id + sfx} }
		id := func(s string) string { return s + sfx }
		mk := func(name string, principal, agent Ref, parent string, at time.Duration) {
			d := record(id(name), principal, agent, today.Add(at))
			if parent != "" {
				d.Parent = id(parent)
			}
			if err := st.Create(ctx, d); err != nil {
				t.Fatalf("Create %s: %v", name, err)
			}
		}
		// root (alice → erin) ← mid (alice → frank) ← leaf (alice → gina)
		mk("root", u("alice"), u("erin"), "", 0)
		mk("mid", u("alice"), u("frank"), "root", time.Second)
		mk("leaf", u("alice"), u("gina"), "mid", 2*time.Second)
		mk("leaf2", u("alice"), u("gina"), "mid", 3*time.Second)
		mk("orphan", u("bob"), u("carl"), "gone", 0)
		mk("loop-a", u("dora"), u("ed"), "loop-b", 0)
		mk("loop-b", u("dora"), u("fay"), "loop-a", 0)
		mk("other", u("alice"), u("hugo"), "", 0)
		for _, c := range []struct {
			name  string
			pairs []Pair
			want  []string
		}{
			{"chain", []Pair{{u("alice"), u("gina")}}, []string{"leaf", "leaf2", "mid", "root"}},
			{"two pairs sharing ancestors", []Pair{{u("alice"), u("gina")}, {u("alice"), u("frank")}}, []string{"leaf", "leaf2", "mid", "root"}},
			{"missing parent", []Pair{{u("bob"), u("carl")}}, []string{"orphan"}},
			{"loop", []Pair{{u("dora"), u("ed")}}, []string{"loop-a", "loop-b"}},
			{"none", []Pair{{u("alice"), u("nobody")}}, nil},
			{"no pairs", nil, nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				recs, err := st.Lineage(ctx, c.pairs)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, d := range recs {
					got = append(got, d.ID)
				}
				slices.Sort(got)
				var want []string
				for _, w := range c.want {
					want = append(want, id(w))
				}
				if !slices.Equal(got, want) {
					t.Errorf("Lineage = %v, want %v", got, want)
				}
			})
		}
	})
}

// TestResolveBatchAnswersAsResolve: a batch of queries, pairs repeated,
// acting for oneself and for no one among them, is answered as each
// query alone.
func TestResolveBatchAnswersAsResolve(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newEnv(t, st, sfx)
		alice, bob, carol, dave := e.user("alice"), e.user("bob"), e.user("carol"), e.user("dave")
		e.poa(alice, bob, []string{"view_statements", "make_payment"}, 1)
		e.offer(OfferRequest{By: as(alice), Principal: alice, Agent: carol, Basis: BasisPowerOfAttorney,
			Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidFrom: date(2026, 1, 1), ValidUntil: date(2027, 1, 1)})
		now := e.clock.Now()
		q := func(actor, principal Ref, action string, amt *float64) Query {
			return Query{Actor: actor, Principal: principal, Action: action, Resource: e.acc("acc-alice"), Amount: amt, Currency: "EUR", Now: now}
		}
		qs := []Query{
			q(bob, alice, "view_statements", nil),
			q(bob, alice, "make_payment", amount(50)),
			q(bob, alice, "close_account", nil),
			q(carol, alice, "view_statements", nil),
			q(dave, alice, "view_statements", nil),
			q(alice, alice, "view_statements", nil),
			q(bob, alice, "view_statements", nil),
		}
		got, err := e.svc.ResolveBatch(context.Background(), qs)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(qs) {
			t.Fatalf("%d proofs for %d queries", len(got), len(qs))
		}
		for i, q := range qs {
			want, err := e.svc.Resolve(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			if jsonOf(t, got[i]) != jsonOf(t, want) {
				t.Errorf("query %d: batch %s, alone %s", i, jsonOf(t, got[i]), jsonOf(t, want))
			}
		}
		if got[0].Status != ProofActive || got[3].Status != ProofNotAccepted || got[4].Status != ProofNoDelegation {
			t.Errorf("statuses %s", jsonOf(t, got))
		}
	})
}
