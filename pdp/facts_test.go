package pdp_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
)

const factsSchema = `
@spicedb("bank_account")
entity Account;
entity User;
action pay appliesTo { principal: [User], resource: [Account], context: {
  amount?: Long, rel: { owner: Bool, can_pay: Bool } } };
action view appliesTo { principal: [User], resource: [Account] };
`

const factsPolicies = `
@id("owner-or-delegate-pays")
permit (principal, action == Action::"pay", resource) when { context.rel.owner || context.rel.can_pay };
@id("anyone-views")
permit (principal, action == Action::"view", resource);
`

// graph is a fake relationship store at the edge of the engine: a set of
// (resource, permission, subject) facts, one conditional fact, and a switch
// that makes it fail. It counts round trips. The real store (SpiceDB) is
// tested in pdp/relations and end to end.
type graph struct {
	mu       sync.Mutex
	has      map[[3]string]bool
	cond     map[[3]string]bool
	fail     error
	calls    int
	lastSize int
}

func (g *graph) CheckFacts(ctx context.Context, checks []pdp.FactCheck) ([]pdp.Fact, string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	g.lastSize = len(checks)
	if g.fail != nil {
		return nil, "", g.fail
	}
	out := make([]pdp.Fact, len(checks))
	for i, c := range checks {
		k := [3]string{c.ResourceType + ":" + c.ResourceID, c.Permission, c.SubjectType + ":" + c.SubjectID}
		out[i] = pdp.Fact{FactCheck: c, Has: g.has[k]}
		if g.cond[k] {
			out[i].Conditional = true
			out[i].MissingContext = []string{"limit"}
		}
	}
	return out, "rev-42", nil
}

func factsEngine(t *testing.T, g *graph) *pdp.Engine {
	t.Helper()
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema": []byte(factsSchema),
		"policies/p.cedar":     []byte(factsPolicies),
	})
	if err != nil {
		t.Fatal(err)
	}
	var src pdp.FactSource
	if g != nil {
		src = g
	}
	return pdp.NewEngine(pdp.Components{Bundles: b, Facts: src, Now: func() time.Time { return time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC) }})
}

func payReq(user string, ctx map[string]any) pdp.Request {
	return pdp.Request{Subject: pdp.Entity{Type: "user", ID: user}, Action: pdp.Action{Name: "pay"},
		Resource: pdp.Entity{Type: "account", ID: "acc-alice"}, Context: ctx}
}

func TestFactsFeedDecisions(t *testing.T) {
	g := &graph{
		has: map[[3]string]bool{
			{"bank_account:acc-alice", "owner", "user:alice"}: true,
			{"bank_account:acc-alice", "can_pay", "user:bob"}: true,
		},
		cond: map[[3]string]bool{{"bank_account:acc-alice", "can_pay", "user:carl"}: true},
	}
	e := factsEngine(t, g)
	tests := []struct {
		name    string
		req     pdp.Request
		allowed bool
		reasons []string
	}{
		{"owner", payReq("alice", nil), true, []string{}},
		{"delegate", payReq("bob", map[string]any{"amount": 250}), true, []string{}},
		{"no relationship", payReq("eve", nil), false, []string{pdp.ReasonNoRelationship}},
		{"conditional counts as not holding", payReq("carl", nil), false, []string{pdp.ReasonFactsIncomplete, pdp.ReasonNotPermitted}},
		{"a request cannot supply facts", payReq("eve", map[string]any{"rel": map[string]any{"owner": true, "can_pay": true}}), false, []string{pdp.ReasonNoRelationship}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.Decide(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tc.allowed || !slices.Equal(d.Reasons, tc.reasons) {
				t.Fatalf("got %v %v (%s), want %v %v", d.Allowed, d.Reasons, d.Message, tc.allowed, tc.reasons)
			}
			if d.FactsRevision != "rev-42" || len(d.Facts) != 2 {
				t.Fatalf("facts %+v at %q: want the 2 planned facts at rev-42", d.Facts, d.FactsRevision)
			}
			// The plan is derived from the schema: rel's Bool attributes, sorted.
			if d.Facts[0].Permission != "can_pay" || d.Facts[1].Permission != "owner" ||
				d.Facts[0].ResourceType != "bank_account" || d.Facts[0].SubjectType != "user" {
				t.Fatalf("unexpected plan: %+v", d.Facts)
			}
			if got := d.Facts[0].Context["now"]; got != "2026-11-28T09:00:00Z" {
				t.Fatalf("caveat context now = %v", got)
			}
			// The facts are part of the recorded Cedar input.
			if _, ok := d.Input.Context.Map()["rel"]; !ok {
				t.Fatal("recorded context lacks rel")
			}
		})
	}
	d, _ := e.Decide(context.Background(), payReq("bob", map[string]any{"amount": 250}))
	if amt := d.Facts[0].Context["amount"]; amt != float64(250) {
		t.Fatalf("caveat context amount = %#v, want float64 250", amt)
	}
}

func TestFactsOneRoundTripPerBatch(t *testing.T) {
	g := &graph{has: map[[3]string]bool{{"bank_account:acc-alice", "owner", "user:alice"}: true}}
	e := factsEngine(t, g)
	view := pdp.Request{Subject: pdp.Entity{Type: "user", ID: "x"}, Action: pdp.Action{Name: "view"}, Resource: pdp.Entity{Type: "account", ID: "a"}}
	ds, err := e.DecideBatch(context.Background(), []pdp.Request{payReq("alice", nil), view, payReq("bob", nil), {}, payReq("eve", nil)})
	if err != nil {
		t.Fatal(err)
	}
	if g.calls != 1 || g.lastSize != 6 {
		t.Fatalf("%d round trips with %d checks, want 1 with 6 (3 payments × 2 facts)", g.calls, g.lastSize)
	}
	got := []bool{ds[0].Allowed, ds[1].Allowed, ds[2].Allowed, ds[3].Allowed, ds[4].Allowed}
	if !slices.Equal(got, []bool{true, true, false, false, false}) {
		t.Fatalf("decisions %v", got)
	}
	if len(ds[1].Facts) != 0 {
		t.Fatalf("an action without declared facts read %v", ds[1].Facts)
	}
}

func TestFactsFailClosed(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    *graph
	}{
		{"store error", &graph{fail: errors.New("connection refused"), has: map[[3]string]bool{{"bank_account:acc-alice", "owner", "user:alice"}: true}}},
		{"no store configured", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := factsEngine(t, tc.g)
			d, err := e.Decide(context.Background(), payReq("alice", nil))
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed || !slices.Equal(d.Reasons, []string{pdp.ReasonFactsUnavailable}) || d.Message == "" {
				t.Fatalf("got %v %v %q, want a deny with facts_unavailable", d.Allowed, d.Reasons, d.Message)
			}
			// Actions that need no facts still decide.
			v, _ := e.Decide(context.Background(), pdp.Request{Subject: pdp.Entity{Type: "user", ID: "x"}, Action: pdp.Action{Name: "view"}, Resource: pdp.Entity{Type: "account", ID: "a"}})
			if !v.Allowed {
				t.Fatalf("view without facts: %v %v", v.Allowed, v.Reasons)
			}
		})
	}
}

// TestCaveatContextOnlyWhereACaveatCanApply: a check whose permission
// cannot reach a caveat in the SpiceDB schema carries no caveat context
// (so the fact cache keys it by the fact alone); one that can carries the
// request's values and the decision time.
func TestCaveatContextOnlyWhereACaveatCanApply(t *testing.T) {
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema": []byte(factsSchema),
		"policies/p.cedar":     []byte(factsPolicies),
		"schema/s.zed": []byte(`
caveat limit(amount int, max int) { amount <= max }
definition user {}
definition bank_account {
  relation owner: user
  relation agent: user with limit
  permission can_pay = owner + agent
}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	g := &graph{has: map[[3]string]bool{}}
	var seen []pdp.FactCheck
	rec := recordingFacts{inner: g, seen: &seen}
	e := pdp.NewEngine(pdp.Components{Bundles: b, Facts: rec})
	if _, err := e.Decide(context.Background(), payReq("bob", map[string]any{"amount": 5})); err != nil {
		t.Fatal(err)
	}
	ctxOf := map[string]map[string]any{}
	for _, c := range seen {
		ctxOf[c.Permission] = c.Context
	}
	if ctxOf["owner"] != nil {
		t.Errorf("owner reaches no caveat, yet its check carries %v", ctxOf["owner"])
	}
	if ctxOf["can_pay"]["amount"] != float64(5) || ctxOf["can_pay"]["now"] == nil {
		t.Errorf("can_pay reaches a caveat; its check carries %v", ctxOf["can_pay"])
	}
}

// recordingFacts passes checks to a fact source and keeps them.
type recordingFacts struct {
	inner pdp.FactSource
	seen  *[]pdp.FactCheck
}

func (r recordingFacts) CheckFacts(ctx context.Context, checks []pdp.FactCheck) ([]pdp.Fact, string, error) {
	*r.seen = append(*r.seen, checks...)
	return r.inner.CheckFacts(ctx, checks)
}
