package console

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/delegation"
)

// chainGraph is a delegation chain laid out for an inline SVG: the
// principal on the left, the agent who asked on the right, one edge per
// delegation record the decision relied on (or, when none held, every
// record it considered), each with its scope, limit and validity; an edge
// that did not hold at the decision's time is marked broken with why.
type chainGraph struct {
	Width, Height int
	StemY         int // where the edges' stems leave the nodes
	Nodes         []chainNode
	Edges         []chainEdge
	Status        string // the decision's delegation status
	Basis         string
	Problem       string
}

type chainNode struct {
	X, Y  int
	Ref   string
	Role  string // principal, agent, intermediary
	Class string
}

type chainEdge struct {
	X1, X2, Y, LabelX int
	ID                string
	Scope             string
	Limit             string
	Valid             string
	State             string // status at the decision's time
	Broken            bool
	Why               string
}

// layout constants of the chain graph.
const (
	nodeGap   = 380
	nodeLeft  = 120
	nodeY     = 70
	edgeStep  = 70
	chainPadY = 70
)

// chainOf builds the chain graph of a decision's delegation proof.
func (c *Console) chainOf(ctx context.Context, e audit.Entry, p *pdp.DelegationProof) *chainGraph {
	g := &chainGraph{Status: p.Status, Basis: p.Basis, StemY: nodeY + 30}
	ids := p.Chain
	if len(ids) == 0 {
		ids = p.Considered
	}
	principal, agent := p.OnBehalfOf.String(), e.Subject
	nodes := []string{principal}
	type edge struct {
		from, to string
		rec      *delegation.Delegation
		id       string
	}
	var edges []edge
	recs := map[string]*delegation.Delegation{}
	for _, id := range ids {
		if c.deps.Delegations == nil {
			break
		}
		d, err := c.deps.Delegations.Get(ctx, id)
		if err != nil {
			g.Problem = fmt.Sprintf("delegation record %s could not be read: %v", id, err)
			continue
		}
		recs[id] = &d
	}
	for _, id := range ids {
		d := recs[id]
		from, to := principal, agent
		if d != nil {
			from, to = d.Principal.String(), d.Agent.String()
			if parent := recs[d.Parent]; d.Parent != "" && parent != nil {
				from = parent.Agent.String()
			}
		}
		edges = append(edges, edge{from: from, to: to, rec: d, id: id})
	}
	// Nodes left to right: the principal, then each record's agent in
	// chain order from the principal (the recorded chain runs from the
	// agent), and the asking agent last.
	for i := len(edges) - 1; i >= 0; i-- {
		for _, n := range []string{edges[i].from, edges[i].to} {
			if !slices.Contains(nodes, n) && n != agent {
				nodes = append(nodes, n)
			}
		}
	}
	if !slices.Contains(nodes, agent) {
		nodes = append(nodes, agent)
	}
	x := map[string]int{}
	for i, n := range nodes {
		role := "intermediary"
		switch n {
		case principal:
			role = "principal"
		case agent:
			role = "agent"
		}
		x[n] = nodeLeft + i*nodeGap
		g.Nodes = append(g.Nodes, chainNode{X: x[n], Y: nodeY, Ref: n, Role: role, Class: "node-" + role})
	}
	for i, ed := range edges {
		ce := chainEdge{X1: min(x[ed.from], x[ed.to]), X2: max(x[ed.from], x[ed.to]), Y: nodeY + chainPadY + i*edgeStep, ID: ed.id}
		ce.LabelX = (ce.X1 + ce.X2) / 2
		if d := ed.rec; d != nil {
			ce.Scope = strings.Join(d.Scope, ", ")
			ce.Limit = limitOf(d.Constraints)
			ce.Valid = d.ValidFrom.UTC().Format("2006-01-02") + " – " + d.ValidUntil.UTC().Format("2006-01-02")
			ce.State, ce.Why = stateAt(*d, e.Time, e.Action)
			ce.Broken = ce.Why != ""
		} else {
			ce.State, ce.Broken, ce.Why = "unknown", true, "record not readable"
		}
		if len(p.Chain) == 0 && !ce.Broken {
			// Considered but not relied on: the engine found it did not hold.
			ce.Broken, ce.Why = true, strings.TrimPrefix(p.Status, "delegation_")
		}
		g.Edges = append(g.Edges, ce)
	}
	g.Width = nodeLeft*2 + (len(nodes)-1)*nodeGap
	g.Height = nodeY + chainPadY + max(len(edges)-1, 0)*edgeStep + 30
	return g
}

// stateAt is a record's status at t (from its history) and, when it did
// not hold for action at t, why.
func stateAt(d delegation.Delegation, t time.Time, action string) (string, string) {
	st := d.Status
	for _, ev := range d.History {
		if !ev.At.After(t) {
			st = ev.Status
		}
	}
	switch {
	case st != delegation.StatusActive:
		return string(st), string(st)
	case t.Before(d.ValidFrom):
		return string(delegation.StatusNotYetValid), "not yet valid"
	case !t.Before(d.ValidUntil):
		return string(delegation.StatusExpired), "expired"
	case !slices.Contains(d.Scope, "*") && !slices.Contains(d.Scope, action):
		return string(st), "out of scope (" + action + ")"
	}
	return string(st), ""
}

func limitOf(c delegation.Constraints) string {
	var parts []string
	if c.MaxAmount != nil {
		parts = append(parts, fmt.Sprintf("≤ %g", *c.MaxAmount))
	}
	if c.Currency != "" {
		parts = append(parts, c.Currency)
	}
	if len(parts) == 0 {
		return "no limit"
	}
	return strings.Join(parts, " ")
}

// axis maps times in [lo, hi] onto [x0, x1].
func axis(lo, hi time.Time, x0, x1 int) func(time.Time) int {
	span := hi.Sub(lo)
	return func(t time.Time) int {
		if span <= 0 {
			return (x0 + x1) / 2
		}
		return x0 + int(float64(x1-x0)*float64(t.Sub(lo))/float64(span))
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
