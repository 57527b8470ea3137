package relations

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// recorder wraps a Checker (SpiceDB here) and records what reaches it.
type recorder struct {
	inner Checker
	mu    sync.Mutex
	calls []recordedCall
}

type recordedCall struct {
	at    Consistency
	items int
}

func (r *recorder) CheckBulkAt(ctx context.Context, checks []Check, at Consistency) (Results, error) {
	r.mu.Lock()
	r.calls = append(r.calls, recordedCall{at: at, items: len(checks)})
	r.mu.Unlock()
	return r.inner.CheckBulkAt(ctx, checks, at)
}

func (r *recorder) take() []recordedCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

// TestCachePinsOneSnapshot follows the cache's reads of SpiceDB: the first
// read of a snapshot asks for the floor and pins the revision read; misses read
// exactly that revision; hits read nothing; all answers carry the pin.
func TestCachePinsOneSnapshot(t *testing.T) {
	s := openMemory(t, Config{CacheSize: -1}).Store
	older := mustWrite(t, s, touch(rel(account("a1"), "owner", user("alice"))))
	mustWrite(t, s, touch(rel(account("a2"), "owner", user("bob"))))
	rec := &recorder{inner: s.raw}
	c, err := NewFactCache(rec, 100, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	c.now = func() time.Time { return clock }
	ctx := context.Background()
	a := Check{Resource: account("a1"), Permission: "manage", Subject: user("alice")}
	b := Check{Resource: account("a2"), Permission: "manage", Subject: user("bob")}
	floor := Consistency{AtLeast: s.Floor()}
	c.Advance(floor.AtLeast)

	check := func(step string, at Consistency, checks []Check, wantCalls []recordedCall) Results {
		t.Helper()
		res, err := c.CheckBulkAt(ctx, checks, at)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		for i, r := range res.Items {
			if !r.Has || r.Check.String() != checks[i].String() {
				t.Fatalf("%s: item %d = %+v", step, i, r)
			}
		}
		got := rec.take()
		if fmt.Sprint(got) != fmt.Sprint(wantCalls) {
			t.Fatalf("%s: SpiceDB saw %v, want %v", step, got, wantCalls)
		}
		return res
	}

	check("not live", floor, []Check{a}, []recordedCall{{floor, 1}})
	c.SetLive(true)
	first := check("first", floor, []Check{a}, []recordedCall{{floor, 1}})
	pin := Consistency{Exact: first.Revision}
	if r := check("one miss", floor, []Check{a, b}, []recordedCall{{pin, 1}}); r.Revision != pin.Exact {
		t.Fatalf("revision %q, want the pin %q", r.Revision, pin.Exact)
	}
	if r := check("all hits", floor, []Check{b, a, b}, nil); r.Revision != pin.Exact {
		t.Fatalf("revision %q, want the pin", r.Revision)
	}
	check("other freshness", Consistency{AtLeast: older}, []Check{a}, []recordedCall{{Consistency{AtLeast: older}, 1}})

	c.Invalidate()
	check("after a change", floor, []Check{a, b}, []recordedCall{{floor, 2}})
	check("cached again", floor, []Check{a, b}, nil)

	clock = clock.Add(time.Minute)
	check("too old", floor, []Check{a}, []recordedCall{{floor, 1}})
	check("fresh again", floor, []Check{a}, nil)

	token := mustWrite(t, s, touch(rel(account("a3"), "owner", user("carol"))))
	c.Advance(token)
	check("old floor after a write", floor, []Check{a}, []recordedCall{{floor, 1}})
	newFloor := Consistency{AtLeast: token}
	check("new floor", newFloor, []Check{a}, []recordedCall{{newFloor, 1}})
	check("new floor cached", newFloor, []Check{a}, nil)

	c.SetLive(false)
	check("feed down", newFloor, []Check{a}, []recordedCall{{newFloor, 1}})

	st := c.Stats()
	if st.Hits != 8 || st.Misses != 10 || st.Live {
		t.Errorf("stats %+v, want 8 hits, 10 misses, not live", st)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		m := f.GetMetric()[0]
		got[f.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	if got["pdp_relations_cache_hits_total"] != 8 || got["pdp_relations_cache_misses_total"] != 10 ||
		got["pdp_relations_cache_live"] != 0 || len(got) != 5 {
		t.Errorf("metrics %v", got)
	}
}

// TestCacheContextKey: the caveat context is part of the key, compared by
// value (map order, int or float, time or its RFC 3339 string).
func TestCacheContextKey(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	same := []map[string]any{
		{"amount": 5, "now": at, "tags": []string{"x"}},
		{"now": "2026-01-02T03:04:05Z", "amount": 5.0, "tags": []any{"x"}},
		{"tags": []any{"x"}, "amount": int64(5), "now": at.In(time.FixedZone("X", 3600))},
	}
	base := Check{Resource: account("a"), Permission: "pay", Subject: user("u")}
	var first string
	for i, ctx := range same {
		c := base
		c.Context = ctx
		k, err := checkKey(c)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = k
		} else if k != first {
			t.Errorf("context %d gives another key", i)
		}
	}
	for i, ctx := range []map[string]any{nil, {"amount": 6, "now": at, "tags": []string{"x"}}, {"amount": 5}} {
		c := base
		c.Context = ctx
		k, _ := checkKey(c)
		if k == first {
			t.Errorf("different context %d gives the same key", i)
		}
	}
	k1, _ := checkKey(Check{Resource: account("a"), Permission: "pay", Subject: Object{"group", "g"}, SubjectRelation: "member"})
	k2, _ := checkKey(Check{Resource: account("a"), Permission: "pay", Subject: Object{"group", "g"}})
	if k1 == k2 {
		t.Error("subject relation is not part of the key")
	}
}

// TestCacheNoStaleFacts runs random writes and deletes against a model and
// checks every fact twice after each (the second time mostly from the
// cache): the cache must never answer with a fact the last write changed.
func TestCacheNoStaleFacts(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		s := m.open(t, Config{}).Store
		rng := rand.New(rand.NewPCG(1, 2))
		accounts := []Object{account("a1"), account("a2"), account("a3")}
		users := []Object{user("u1"), user("u2"), user("u3")}
		type pair struct{ a, u int }
		model := map[pair]bool{}
		var checks []Check
		var pairs []pair
		for ai, a := range accounts {
			for ui, u := range users {
				checks = append(checks,
					Check{Resource: a, Permission: "manage", Subject: u},
					Check{Resource: a, Permission: "pay", Subject: u, Context: map[string]any{"amount": 1}})
				pairs = append(pairs, pair{ai, ui}, pair{ai, ui})
			}
		}
		ctx := context.Background()
		const rounds = 60
		for round := range rounds {
			p := pair{rng.IntN(len(accounts)), rng.IntN(len(users))}
			r := rel(accounts[p.a], "owner", users[p.u])
			var err error
			switch op := rng.IntN(4); {
			case op < 2:
				_, err = s.WriteRelationships(ctx, touch(r))
				model[p] = true
			case op == 2:
				_, err = s.WriteRelationships(ctx, []Update{{Op: OpDelete, Rel: r}})
				model[p] = false
			default:
				_, err = s.DeleteRelationships(ctx, Filter{ResourceType: "account", ResourceID: accounts[p.a].ID})
				for k := range model {
					if k.a == p.a {
						model[k] = false
					}
				}
			}
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			for try := range 2 {
				res := mustCheck(t, s, checks...)
				for i, item := range res.Items {
					if item.Has != model[pairs[i]] {
						t.Fatalf("round %d try %d: %s = %s, model says %v", round, try, checks[i], outcome(item), model[pairs[i]])
					}
				}
			}
		}
		st := s.Cache().Stats()
		t.Logf("%s: %+v", m.name, st)
		if st.Hits < uint64(rounds*len(checks)/2) {
			t.Errorf("%d hits in %d rounds of %d checks: the repeats did not hit", st.Hits, rounds, len(checks))
		}
	})
}
