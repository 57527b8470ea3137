package pdp_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
)

const oboSchema = `
entity User;
entity Organisation;
entity Account;
action view appliesTo { principal: [User], resource: [Account], context: {
  rel: { owner: Bool, view: Bool },
  on_behalf_of_rel: { owner: Bool },
  delegation: { active: Bool, status: String, chain: Set<String>, depth: Long, basis: String, principal: String } } };
action pay appliesTo { principal: [User], resource: [Account], context: {
  amount?: Long, currency?: String,
  rel: { owner: Bool, pay: Bool },
  on_behalf_of_rel: { owner: Bool },
  delegation: { active: Bool, status: String } } };
`

const oboPolicies = `
@id("owner-views") permit (principal, action == Action::"view", resource) when { context.rel.owner };
@id("delegate-views") permit (principal, action == Action::"view", resource)
  when { context.delegation.active && context.on_behalf_of_rel.owner && context.rel.view };
@id("owner-pays") permit (principal, action == Action::"pay", resource) when { context.rel.owner };
@id("delegate-pays") permit (principal, action == Action::"pay", resource)
  when { context.delegation.active && context.on_behalf_of_rel.owner && context.rel.pay };
`

// registry is a hand-written delegation source at the engine's edge: the
// status answered per (actor, principal), with a switch that fails it. The
// real records (pdp/delegation) are tested there and end to end.
type registry struct {
	status map[[2]string]string
	fail   error
	last   pdp.DelegationQuery
}

func (r *registry) ResolveDelegations(ctx context.Context, qs []pdp.DelegationQuery) ([]pdp.DelegationProof, error) {
	out := make([]pdp.DelegationProof, len(qs))
	for i, q := range qs {
		p, err := r.resolve(ctx, q)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

func (r *registry) resolve(_ context.Context, q pdp.DelegationQuery) (pdp.DelegationProof, error) {
	r.last = q
	if r.fail != nil {
		return pdp.DelegationProof{}, r.fail
	}
	st, ok := r.status[[2]string{q.Actor.String(), q.Principal.String()}]
	if !ok {
		return pdp.DelegationProof{Status: pdp.DelegationNone}, nil
	}
	p := pdp.DelegationProof{Status: st, Considered: []string{"dlg-1"}}
	if st == pdp.DelegationActive {
		p.Chain, p.Basis = []string{"dlg-1"}, "power_of_attorney"
	}
	return p, nil
}

func TestActingOnBehalfOf(t *testing.T) {
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema": []byte(oboSchema),
		"policies/p.cedar":     []byte(oboPolicies),
	})
	if err != nil {
		t.Fatal(err)
	}
	g := &graph{has: map[[3]string]bool{
		{"account:acc-alice", "owner", "user:alice"}:       true,
		{"account:acc-alice", "view", "user:bob"}:          true,
		{"account:acc-alice", "pay", "user:bob"}:           true,
		{"account:acc-alice", "view", "user:oscar"}:        false,
		{"account:acc-acme", "owner", "organisation:acme"}: true,
	}}
	reg := &registry{status: map[[2]string]string{
		{"user:bob", "user:alice"}:   pdp.DelegationActive,
		{"user:oscar", "user:alice"}: pdp.DelegationExpired,
		{"user:peggy", "user:alice"}: pdp.DelegationNotAccepted,
		{"user:frank", "user:alice"}: pdp.DelegationOutOfScope,
		{"user:ruth", "user:alice"}:  pdp.DelegationRevoked,
	}}
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	e := pdp.NewEngine(pdp.Components{Bundles: b, Facts: g, Delegations: reg, Now: func() time.Time { return now }})
	req := func(actor, action, res string, ctx map[string]any) pdp.Request {
		return pdp.Request{Subject: pdp.Entity{Type: "user", ID: actor}, Action: pdp.Action{Name: action},
			Resource: pdp.Entity{Type: "account", ID: res}, Context: ctx}
	}
	forAlice := func(extra map[string]any) map[string]any {
		m := map[string]any{"on_behalf_of": map[string]any{"type": "user", "id": "alice"}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		req     pdp.Request
		allowed bool
		reasons []string
		status  string
	}{
		{"owner acts for herself", req("alice", "view", "acc-alice", nil), true, []string{}, ""},
		{"on behalf of oneself is acting for no one", req("alice", "view", "acc-alice", map[string]any{"on_behalf_of": map[string]any{"type": "user", "id": "alice"}}), true, []string{}, ""},
		{"active delegate", req("bob", "view", "acc-alice", forAlice(nil)), true, []string{}, pdp.DelegationActive},
		{"delegate without on_behalf_of has no relationship of his own", req("bob", "view", "acc-carol", nil), false, []string{pdp.ReasonNoRelationship}, ""},
		{"active delegate on an account the principal does not own", req("bob", "view", "acc-acme", forAlice(nil)), false, []string{pdp.ReasonNoRelationship}, pdp.DelegationActive},
		{"expired", req("oscar", "view", "acc-alice", forAlice(nil)), false, []string{pdp.ReasonDelegationExpired}, pdp.DelegationExpired},
		{"not accepted", req("peggy", "view", "acc-alice", forAlice(nil)), false, []string{pdp.ReasonDelegationNotAccepted}, pdp.DelegationNotAccepted},
		{"out of scope", req("frank", "pay", "acc-alice", forAlice(map[string]any{"amount": 5})), false, []string{pdp.ReasonDelegationOutOfScope}, pdp.DelegationOutOfScope},
		{"revoked", req("ruth", "view", "acc-alice", forAlice(nil)), false, []string{pdp.ReasonDelegationRevoked}, pdp.DelegationRevoked},
		{"no delegation at all", req("eve", "view", "acc-alice", forAlice(nil)), false, []string{pdp.ReasonNoRelationship}, pdp.DelegationNone},
		{"on_behalf_of of an unknown type", req("bob", "view", "acc-alice", map[string]any{"on_behalf_of": map[string]any{"type": "robot", "id": "r2"}}), false, []string{pdp.ReasonInvalidInput}, ""},
		{"on_behalf_of not an object", req("bob", "view", "acc-alice", map[string]any{"on_behalf_of": "alice"}), false, []string{pdp.ReasonInvalidInput}, ""},
		{"a request cannot supply the delegation", req("eve", "view", "acc-alice", forAlice(map[string]any{"delegation": map[string]any{"active": true}, "on_behalf_of_rel": map[string]any{"owner": true}})), false, []string{pdp.ReasonNoRelationship}, pdp.DelegationNone},
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
			got := ""
			if d.Delegation != nil {
				got = d.Delegation.Status
				if d.Delegation.OnBehalfOf.String() != "user:alice" {
					t.Fatalf("proof names %v, want user:alice", d.Delegation.OnBehalfOf)
				}
			}
			if got != tc.status {
				t.Fatalf("delegation status %q, want %q", got, tc.status)
			}
		})
	}

	t.Run("the record holds the chain and the facts for the principal", func(t *testing.T) {
		d, _ := e.Decide(context.Background(), req("bob", "view", "acc-alice", forAlice(nil)))
		if !slices.Equal(d.Delegation.Chain, []string{"dlg-1"}) {
			t.Fatalf("chain %v", d.Delegation.Chain)
		}
		var subjects []string
		for _, f := range d.Facts {
			subjects = append(subjects, f.Permission+"@"+f.SubjectType+":"+f.SubjectID)
		}
		if want := []string{"owner@user:bob", "view@user:bob", "owner@user:alice"}; !slices.Equal(subjects, want) {
			t.Fatalf("facts %v, want %v", subjects, want)
		}
		del, ok := d.Input.Context.Get("delegation")
		if !ok {
			t.Fatal("context.delegation missing from the recorded input")
		}
		if got := del.String(); got == "" {
			t.Fatal("empty delegation record")
		}
		// Replaying the recorded input needs no relationship or delegation
		// store: the facts and the delegation are in its context.
		in := d.Input
		dec, _ := cedar.Authorize(b.PolicySet(), types.EntityMap{},
			cedar.Request{Principal: in.Principal, Action: in.Action, Resource: in.Resource, Context: in.Context})
		if dec != cedar.Allow {
			t.Fatalf("replay of the recorded input gave %v, the decision was allow", dec)
		}
	})

	t.Run("amount and currency reach the delegation query", func(t *testing.T) {
		_, _ = e.Decide(context.Background(), req("bob", "pay", "acc-alice", forAlice(map[string]any{"amount": 250, "currency": "eur"})))
		if reg.last.Amount == nil || *reg.last.Amount != 250 || reg.last.Currency != "EUR" || reg.last.Action != "pay" || reg.last.Resource.String() != "account:acc-alice" {
			t.Fatalf("query %+v", reg.last)
		}
	})

	t.Run("records unreachable: fail closed", func(t *testing.T) {
		reg.fail = errors.New("disk on fire")
		defer func() { reg.fail = nil }()
		d, _ := e.Decide(context.Background(), req("bob", "view", "acc-alice", forAlice(nil)))
		if d.Allowed || !slices.Equal(d.Reasons, []string{pdp.ReasonFactsUnavailable}) {
			t.Fatalf("got %v %v", d.Allowed, d.Reasons)
		}
		ds, err := e.DecideBatch(context.Background(), []pdp.Request{req("bob", "view", "acc-alice", forAlice(nil)), req("alice", "view", "acc-alice", nil)})
		if err != nil {
			t.Fatal(err)
		}
		if ds[0].Allowed || !ds[1].Allowed {
			t.Fatalf("batch: got %v %v, want the delegate denied and the owner allowed", ds[0].Allowed, ds[1].Allowed)
		}
	})

	t.Run("no delegation store: fail closed", func(t *testing.T) {
		e := pdp.NewEngine(pdp.Components{Bundles: b, Facts: g})
		d, _ := e.Decide(context.Background(), req("bob", "view", "acc-alice", forAlice(nil)))
		if d.Allowed || !slices.Equal(d.Reasons, []string{pdp.ReasonFactsUnavailable}) {
			t.Fatalf("got %v %v", d.Allowed, d.Reasons)
		}
	})
}
