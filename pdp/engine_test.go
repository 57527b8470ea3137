package pdp_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
)

const testSchema = `
entity Group;
entity User in [Group] { level?: Long, email?: String, tags?: Set<String>, home?: ipaddr, since?: datetime };
entity Doc { owner?: User, public?: Bool, limit?: decimal };
action view appliesTo { principal: [User], resource: [Doc], context: {
  ip?: ipaddr, amount?: decimal, now?: datetime, on_behalf_of?: User,
  action_properties?: { soft?: Bool }, window?: duration } };
action edit appliesTo { principal: [User], resource: [Doc] };
`

const testPolicies = `
@id("owner")
permit (principal, action == Action::"view", resource) when { resource has owner && resource.owner == principal };
@id("staff")
@obligation("log_access")
permit (principal in Group::"staff", action == Action::"view", resource);
@id("public")
permit (principal, action == Action::"view", resource) when { resource has public && resource.public };
@id("soft")
permit (principal, action == Action::"view", resource) when { context has action_properties && context.action_properties has soft && context.action_properties.soft };
@id("big-amount")
@reason("amount_too_high")
@obligation("step_up_authentication")
forbid (principal, action == Action::"view", resource) when { context has amount && context.amount.greaterThan(decimal("1000.0")) };
@id("blocked")
forbid (principal == User::"mallory", action, resource);
@id("level-overflow")
permit (principal, action == Action::"edit", resource) when { principal has level && principal.level * 4611686018427387904 > 0 };
@id("window")
permit (principal, action == Action::"view", resource) when { context has window && context.window == duration("1h") && context has now && context.now > datetime("2020-01-01") };
`

const testEntities = `[
 {"uid":{"type":"Group","id":"staff"},"attrs":{},"parents":[]},
 {"uid":{"type":"User","id":"sam"},"attrs":{"level":1},"parents":[{"type":"Group","id":"staff"}]},
 {"uid":{"type":"User","id":"ann"},"attrs":{"level":9},"parents":[]},
 {"uid":{"type":"Doc","id":"anns"},"attrs":{"owner":{"__entity":{"type":"User","id":"ann"}}},"parents":[]}
]`

func testBundle(t testing.TB) *policy.Bundle {
	t.Helper()
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema":   []byte(testSchema),
		"policies/p.cedar":       []byte(testPolicies),
		"policies/entities.json": []byte(testEntities),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func num(s string) json.Number { return json.Number(s) }

func TestDecide(t *testing.T) {
	b := testBundle(t)
	fixed := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	e := pdp.NewEngine(pdp.Components{Bundles: b, Now: func() time.Time { return fixed }})
	user := func(id string, props map[string]any) pdp.Entity {
		return pdp.Entity{Type: "user", ID: id, Properties: props}
	}
	doc := func(id string, props map[string]any) pdp.Entity {
		return pdp.Entity{Type: "Doc", ID: id, Properties: props}
	}
	view := pdp.Action{Name: "view"}
	tests := []struct {
		name                           string
		req                            pdp.Request
		allowed                        bool
		policies, reasons, obligations []string
		errorPolicies                  []string
		messageHas                     string
	}{
		{name: "owner from trusted entities", req: pdp.Request{Subject: user("ann", nil), Action: view, Resource: doc("anns", nil)},
			allowed: true, policies: []string{"owner"}},
		{name: "properties cannot override a trusted entity",
			req:     pdp.Request{Subject: user("bob", nil), Action: view, Resource: doc("anns", map[string]any{"owner": map[string]any{"type": "User", "id": "bob"}})},
			reasons: []string{pdp.ReasonNotPermitted}},
		{name: "unknown resource described by properties",
			req:     pdp.Request{Subject: user("bob", nil), Action: view, Resource: doc("new", map[string]any{"owner": map[string]any{"type": "user", "id": "bob"}})},
			allowed: true, policies: []string{"owner"}},
		{name: "group membership from trusted parents, with obligation",
			req:     pdp.Request{Subject: user("sam", nil), Action: view, Resource: doc("x", nil)},
			allowed: true, policies: []string{"staff"}, obligations: []string{"log_access"}},
		{name: "undeclared properties are dropped", req: pdp.Request{Subject: user("bob", map[string]any{"department": "x"}), Action: view, Resource: doc("x", map[string]any{"public": true, "color": "red"})},
			allowed: true, policies: []string{"public"}},
		{name: "action properties reach the context", req: pdp.Request{Subject: user("bob", nil), Action: pdp.Action{Name: "view", Properties: map[string]any{"soft": true}}, Resource: doc("x", nil)},
			allowed: true, policies: []string{"soft"}},
		{name: "request cannot spoof action_properties through context", req: pdp.Request{Subject: user("bob", nil), Action: view, Resource: doc("x", nil), Context: map[string]any{"action_properties": map[string]any{"soft": true}}},
			reasons: []string{pdp.ReasonNotPermitted}},
		{name: "forbid with reason and obligation beats permits", req: pdp.Request{Subject: user("ann", nil), Action: view, Resource: doc("anns", nil), Context: map[string]any{"amount": num("1500")}},
			policies: []string{"big-amount"}, reasons: []string{"amount_too_high"}, obligations: []string{"step_up_authentication"}},
		{name: "decimal amounts under the limit", req: pdp.Request{Subject: user("ann", nil), Action: view, Resource: doc("anns", nil), Context: map[string]any{"amount": num("999.99")}},
			allowed: true, policies: []string{"owner"}},
		{name: "forbid without reason gives forbidden", req: pdp.Request{Subject: user("mallory", nil), Action: view, Resource: doc("x", map[string]any{"public": true})},
			policies: []string{"blocked"}, reasons: []string{pdp.ReasonForbidden}},
		{name: "evaluation error is reported, policy skipped", req: pdp.Request{Subject: user("ann", nil), Action: pdp.Action{Name: "edit"}, Resource: doc("x", nil)},
			reasons: []string{pdp.ReasonNotPermitted, pdp.ReasonPolicyError}, errorPolicies: []string{"level-overflow"}},
		{name: "engine fills now; durations parse", req: pdp.Request{Subject: user("bob", nil), Action: view, Resource: doc("x", nil), Context: map[string]any{"window": "1h", "now": "1999-01-01"}},
			allowed: true, policies: []string{"window"}},
		{name: "wrong property type is invalid input", req: pdp.Request{Subject: user("bob", map[string]any{"level": "high"}), Action: view, Resource: doc("x", nil)},
			reasons: []string{pdp.ReasonInvalidInput}, messageHas: "subject.properties.level must be an integer"},
		{name: "bad ip is invalid input", req: pdp.Request{Subject: user("bob", nil), Action: view, Resource: doc("x", nil), Context: map[string]any{"ip": "300.1.1.1"}},
			reasons: []string{pdp.ReasonInvalidInput}, messageHas: "context.ip"},
		{name: "fractional long is invalid input", req: pdp.Request{Subject: user("bob", map[string]any{"level": num("1.5")}), Action: view, Resource: doc("x", nil)},
			reasons: []string{pdp.ReasonInvalidInput}},
		{name: "entity reference of an unknown type", req: pdp.Request{Subject: user("bob", nil), Action: view, Resource: doc("x", nil), Context: map[string]any{"on_behalf_of": map[string]any{"type": "ghost", "id": "g"}}},
			reasons: []string{pdp.ReasonInvalidInput}},
		{name: "unknown action", req: pdp.Request{Subject: user("bob", nil), Action: pdp.Action{Name: "delete"}, Resource: doc("x", nil)},
			reasons: []string{pdp.ReasonUnknownAction}, messageHas: `"delete"`},
		{name: "unknown subject type", req: pdp.Request{Subject: pdp.Entity{Type: "robot", ID: "r"}, Action: view, Resource: doc("x", nil)},
			reasons: []string{pdp.ReasonUnknownEntityType}},
		{name: "incomplete request", req: pdp.Request{Subject: user("bob", nil), Action: view},
			reasons: []string{pdp.ReasonInvalidInput}, messageHas: "resource"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Application = "app-1"
			d, err := e.Decide(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tc.allowed {
				t.Errorf("allowed = %v, want %v (policies %v reasons %v errors %v message %q)", d.Allowed, tc.allowed, d.Policies, d.Reasons, d.Errors, d.Message)
			}
			check := func(what string, got, want []string) {
				if want == nil {
					want = []string{}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s = %v, want %v", what, got, want)
				}
			}
			check("policies", d.Policies, tc.policies)
			check("reasons", d.Reasons, tc.reasons)
			check("obligations", d.Obligations, tc.obligations)
			var ep []string
			for _, er := range d.Errors {
				ep = append(ep, er.PolicyID)
			}
			if tc.errorPolicies != nil || ep != nil {
				check("error policies", ep, tc.errorPolicies)
			}
			if !strings.Contains(d.Message, tc.messageHas) {
				t.Errorf("message %q does not contain %q", d.Message, tc.messageHas)
			}
			if d.ID == "" || d.Application != "app-1" || d.PolicyVersion != b.Version() || !d.Time.Equal(fixed) {
				t.Errorf("decision metadata: id %q app %q version %v time %v", d.ID, d.Application, d.PolicyVersion, d.Time)
			}
		})
	}
}

// TestDecisionInputReplays checks that the recorded input alone (no bundle
// entities) reproduces the decision with the unsliced policy set, and that
// it survives a JSON round trip: what a decision trail will rely on.
func TestDecisionInputReplays(t *testing.T) {
	b := testBundle(t)
	e := pdp.NewEngine(pdp.Components{Bundles: b})
	reqs := []pdp.Request{
		{Subject: pdp.Entity{Type: "User", ID: "sam"}, Action: pdp.Action{Name: "view"}, Resource: pdp.Entity{Type: "Doc", ID: "x"}},
		{Subject: pdp.Entity{Type: "User", ID: "ann"}, Action: pdp.Action{Name: "view"}, Resource: pdp.Entity{Type: "Doc", ID: "anns"}, Context: map[string]any{"amount": num("2000")}},
		{Subject: pdp.Entity{Type: "User", ID: "ann"}, Action: pdp.Action{Name: "edit"}, Resource: pdp.Entity{Type: "Doc", ID: "anns"}},
		{Subject: pdp.Entity{Type: "User", ID: "zed", Properties: map[string]any{"level": 3}}, Action: pdp.Action{Name: "view", Properties: map[string]any{"soft": true}}, Resource: pdp.Entity{Type: "Doc", ID: "y", Properties: map[string]any{"public": false}}},
	}
	ds, err := e.DecideBatch(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range ds {
		raw, err := json.Marshal(d.Input)
		if err != nil {
			t.Fatal(err)
		}
		var in struct {
			Principal, Action, Resource types.EntityUID
			Context                     types.Record
			Entities                    types.EntityMap
		}
		if err := json.Unmarshal(raw, &in); err != nil {
			t.Fatalf("input %d does not round-trip: %v\n%s", i, err, raw)
		}
		if _, ok := in.Entities[in.Principal]; !ok {
			t.Errorf("input %d lacks the principal entity", i)
		}
		dec, diag := cedar.Authorize(b.PolicySet(), in.Entities,
			cedar.Request{Principal: in.Principal, Action: in.Action, Resource: in.Resource, Context: in.Context})
		var ids []string
		for _, r := range diag.Reasons {
			ids = append(ids, string(r.PolicyID))
		}
		slices.Sort(ids)
		if (dec == cedar.Allow) != d.Allowed || !slices.Equal(nonNil(ids), d.Policies) || len(diag.Errors) != len(d.Errors) {
			t.Errorf("request %d: replay gave %v %v (%d errors), decision was %v %v (%d errors)", i, dec, ids, len(diag.Errors), d.Allowed, d.Policies, len(d.Errors))
		}
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type noBundle struct{}

func (noBundle) Current() *policy.Bundle { return nil }

func TestNotReady(t *testing.T) {
	e := pdp.NewEngine(pdp.Components{Bundles: noBundle{}})
	if _, err := e.Decide(context.Background(), pdp.Request{}); !errors.Is(err, pdp.ErrNotReady) {
		t.Fatalf("Decide without a bundle: %v, want ErrNotReady", err)
	}
	if _, err := e.DecideBatch(context.Background(), []pdp.Request{{}}); !errors.Is(err, pdp.ErrNotReady) {
		t.Fatalf("DecideBatch without a bundle: %v, want ErrNotReady", err)
	}
}

func TestDecisionIDsAreTimeOrdered(t *testing.T) {
	e := pdp.NewEngine(pdp.Components{Bundles: testBundle(t)})
	req := pdp.Request{Subject: pdp.Entity{Type: "User", ID: "sam"}, Action: pdp.Action{Name: "view"}, Resource: pdp.Entity{Type: "Doc", ID: "x"}}
	prev := ""
	for range 100 {
		d, _ := e.Decide(context.Background(), req)
		if d.ID <= prev {
			t.Fatalf("decision id %s not after %s", d.ID, prev)
		}
		prev = d.ID
	}
}
