package console

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/delegation"
)

// records is a fixed set of delegation records, standing in for the
// delegation service at the console's edge.
type records map[string]delegation.Delegation

func (r records) Get(_ context.Context, id string) (delegation.Delegation, error) {
	d, ok := r[id]
	if !ok {
		return d, fmt.Errorf("%w: %s", delegation.ErrNotFound, id)
	}
	return d, nil
}

func (r records) List(_ context.Context, f delegation.Filter) ([]delegation.Delegation, error) {
	var out []delegation.Delegation
	for _, d := range r {
		if (f.Principal == nil || *f.Principal == d.Principal) && (f.Agent == nil || *f.Agent == d.Agent) {
			out = append(out, d)
		}
	}
	return out, nil
}

func day(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestStateAt(t *testing.T) {
	limit := 1000.0
	d := delegation.Delegation{ID: "poa", Scope: []string{"make_payment"}, Status: delegation.StatusRevoked,
		ValidFrom: day("2026-01-01"), ValidUntil: day("2027-01-01"), Constraints: delegation.Constraints{MaxAmount: &limit, Currency: "EUR"},
		History: []delegation.Event{
			{Type: "offered", At: day("2025-12-01"), Status: delegation.StatusOffered},
			{Type: "accepted", At: day("2025-12-02"), Status: delegation.StatusActive},
			{Type: "revoked", At: day("2026-06-01"), Status: delegation.StatusRevoked},
		}}
	for _, tc := range []struct {
		at     string
		action string
		state  string
		why    string
	}{
		{"2025-12-01", "make_payment", "offered", "offered"},
		{"2025-12-15", "make_payment", "not_yet_valid", "not yet valid"},
		{"2026-03-01", "make_payment", "active", ""},
		{"2026-03-01", "close_account", "active", "out of scope (close_account)"},
		{"2026-06-01", "make_payment", "revoked", "revoked"},
		{"2026-07-01", "make_payment", "revoked", "revoked"},
	} {
		st, why := stateAt(d, day(tc.at), tc.action)
		if st != tc.state || why != tc.why {
			t.Errorf("%s %s: %q %q, want %q %q", tc.at, tc.action, st, why, tc.state, tc.why)
		}
	}
	if got := limitOf(d.Constraints); got != "≤ 1000 EUR" {
		t.Errorf("limit %q", got)
	}
	if got := limitOf(delegation.Constraints{}); got != "no limit" {
		t.Errorf("limit %q", got)
	}
}

// TestChainOfASubDelegation: acme → erin → frank is drawn left to right
// from the principal, with erin's record revoked (the broken link) and
// frank's intact; a record the service cannot read is a broken link too.
func TestChainOfASubDelegation(t *testing.T) {
	acme, erin, frank := delegation.Ref{Type: "organisation", ID: "acme"}, delegation.Ref{Type: "user", ID: "erin"}, delegation.Ref{Type: "user", ID: "frank"}
	hist := func(st delegation.Status) []delegation.Event {
		return []delegation.Event{{At: day("2026-01-01"), Status: st}}
	}
	c := &Console{deps: Deps{Delegations: records{
		"rep-acme-erin":  {ID: "rep-acme-erin", Principal: acme, Agent: erin, Scope: []string{"*"}, ValidFrom: day("2026-01-01"), ValidUntil: day("2030-01-01"), Status: delegation.StatusRevoked, History: hist(delegation.StatusRevoked)},
		"sub-acme-frank": {ID: "sub-acme-frank", Principal: acme, Agent: frank, Parent: "rep-acme-erin", Scope: []string{"view_statements"}, ValidFrom: day("2026-01-01"), ValidUntil: day("2030-01-01"), Status: delegation.StatusActive, History: hist(delegation.StatusActive)},
	}}}
	e := audit.Entry{Subject: "user:frank", Action: "view_statements", Time: day("2026-05-01")}
	g := c.chainOf(context.Background(), e, &pdp.DelegationProof{OnBehalfOf: pdp.ObjectRef{Type: "organisation", ID: "acme"}, Status: "delegation_revoked",
		Chain: []string{"sub-acme-frank", "rep-acme-erin"}})
	var refs []string
	for _, n := range g.Nodes {
		refs = append(refs, n.Ref+"/"+n.Role)
	}
	if fmt.Sprint(refs) != "[organisation:acme/principal user:erin/intermediary user:frank/agent]" {
		t.Fatalf("nodes %v", refs)
	}
	if len(g.Edges) != 2 {
		t.Fatalf("edges %+v", g.Edges)
	}
	byID := map[string]chainEdge{}
	for _, ed := range g.Edges {
		byID[ed.ID] = ed
	}
	if ed := byID["rep-acme-erin"]; !ed.Broken || ed.Why != "revoked" || ed.X1 != g.Nodes[0].X || ed.X2 != g.Nodes[1].X {
		t.Errorf("erin's edge %+v", ed)
	}
	if ed := byID["sub-acme-frank"]; ed.Broken || ed.X1 != g.Nodes[1].X || ed.X2 != g.Nodes[2].X || ed.Scope != "view_statements" {
		t.Errorf("frank's edge %+v", ed)
	}

	g = c.chainOf(context.Background(), e, &pdp.DelegationProof{OnBehalfOf: pdp.ObjectRef{Type: "organisation", ID: "acme"}, Status: "delegation_not_found", Considered: []string{"gone"}})
	if len(g.Edges) != 1 || !g.Edges[0].Broken || g.Problem == "" {
		t.Errorf("unreadable record: %+v", g)
	}
}
