package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// factsBundle is a small bank whose decisions need relationship facts:
// owners pay and view, a payment agent pays within a mandate (amount limit
// and validity window, evaluated by SpiceDB against the decision time).
var factsBundle = map[string]string{
	"schema/bank.cedarschema": `
entity User;
entity Account;
action make_payment appliesTo { principal: [User], resource: [Account],
  context: { amount?: Long, rel: { make_payment: Bool } } };
action view_statements appliesTo { principal: [User], resource: [Account],
  context: { rel: { view_statements: Bool } } };
`,
	"schema/bank.zed": `
caveat within_mandate(now timestamp, valid_from timestamp, valid_until timestamp, amount double, max_amount double) {
  now >= valid_from && now < valid_until && amount <= max_amount
}
definition user {}
definition account {
  relation owner: user
  relation payment_agent: user with within_mandate
  permission make_payment = owner + payment_agent
  permission view_statements = owner
}
`,
	"policies/bank.cedar": `
@id("pay-with-authority")
permit (principal, action == Action::"make_payment", resource) when { context.rel.make_payment };
@id("view-with-authority")
permit (principal, action == Action::"view_statements", resource) when { context.rel.view_statements };
`,
	"relationships.txt": `
# who holds what on acc-alice
account:acc-alice#owner@user:alice
account:acc-alice#payment_agent@user:bob[within_mandate:{"valid_from":"2026-01-01T00:00:00Z","valid_until":"2041-12-31T00:00:00Z","max_amount":1000}]
account:acc-alice#payment_agent@user:oscar[within_mandate:{"valid_from":"2024-01-01T00:00:00Z","valid_until":"2025-12-31T00:00:00Z","max_amount":1000}]
`,
}

func writeBundle(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(name)), content)
	}
	return dir
}

// TestServeWithRelationshipFacts runs the real binary path with embedded
// SpiceDB (memory datastore): the SpiceDB schema comes from the bundle, the
// relationships from relations.bootstrap, and every decision reads its
// facts from SpiceDB.
func TestServeWithRelationshipFacts(t *testing.T) {
	dir := writeBundle(t, factsBundle)
	t.Setenv("PDP_RELATIONS_BOOTSTRAP", filepath.Join(dir, "relationships.txt"))
	s := startServer(t, "--dir", dir)
	acc := `{"type": "account", "id": "acc-alice"}`
	pay := func(who, amount string) string {
		return `{"subject": {"type": "user", "id": "` + who + `"}, "action": {"name": "make_payment"}, "resource": ` + acc +
			`, "context": {"amount": ` + amount + `, "currency": "EUR"}}`
	}
	tests := []struct {
		name    string
		body    string
		allowed bool
		reasons []string
	}{
		{"the owner pays", pay("alice", "250"), true, []string{}},
		{"a payment agent pays within the mandate", pay("bob", "250"), true, []string{}},
		{"a payment agent pays beyond the mandate", pay("bob", "1500"), false, []string{"no_relationship"}},
		{"an expired mandate", pay("oscar", "250"), false, []string{"no_relationship"}},
		{"no relationship", pay("eve", "250"), false, []string{"no_relationship"}},
		{"a payment without an amount: the mandate cannot be judged", `{"subject": {"type": "user", "id": "bob"}, "action": {"name": "make_payment"}, "resource": ` + acc + `}`,
			false, []string{"facts_incomplete", "not_permitted"}},
		{"the owner views", evaluation("alice", "view_statements", acc), true, []string{}},
		{"a payment agent does not view", evaluation("bob", "view_statements", acc), false, []string{"no_relationship"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := s.evaluate(t, tc.body)
			if d.Decision != tc.allowed || !slices.Equal(d.Context.Reasons, tc.reasons) {
				t.Fatalf("got %v %v, want %v %v", d.Decision, d.Context.Reasons, tc.allowed, tc.reasons)
			}
		})
	}
}

func TestValidateChecksFactsAgainstSpiceDBSchema(t *testing.T) {
	broken := map[string]string{}
	for k, v := range factsBundle {
		broken[k] = v
	}
	broken["schema/bank.cedarschema"] = strings.Replace(broken["schema/bank.cedarschema"],
		"rel: { view_statements: Bool }", "rel: { view_statements: Bool, close_account: Bool }", 1)
	withSubject := func(rule string) map[string]string {
		m := map[string]string{}
		for k, v := range factsBundle {
			m[k] = v
		}
		m["schema/bank.cedarschema"] = strings.Replace(m["schema/bank.cedarschema"], "entity Account;", `@data_subject("`+rule+`") entity Account;`, 1)
		return m
	}
	badSubject, goodSubject := withSubject("holder"), withSubject("owner")
	for _, tc := range []struct {
		name  string
		files map[string]string
		code  int
		want  string
	}{
		{"facts match the SpiceDB schema", factsBundle, exitOK, "valid:"},
		{"a fact SpiceDB does not know", broken, exitFailure, `context.rel.close_account is neither a relation nor a permission of SpiceDB definition "account"`},
		{"a data subject relation SpiceDB does not know", badSubject, exitFailure, `@data_subject("holder"): SpiceDB definition "account" has no relation or permission "holder"`},
		{"a data subject relation SpiceDB knows", goodSubject, exitOK, "valid:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeBundle(t, tc.files)
			var out bytes.Buffer
			code := run(context.Background(), []string{"validate", dir}, strings.NewReader(""), &out, io.Discard)
			if code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit %d and %q", code, out.String(), tc.code, tc.want)
			}
		})
	}
}

// TestTestWithRelationships: `pdp test` gives each suite of a bundle with
// a SpiceDB schema its own embedded SpiceDB holding the suite's
// relationships.
func TestTestWithRelationships(t *testing.T) {
	files := map[string]string{}
	for k, v := range factsBundle {
		files[k] = v
	}
	files["tests/mandates_test.yaml"] = `
name: mandates
relationships:
  - account:acc-alice#owner@user:alice
  - 'account:acc-alice#payment_agent@user:bob[within_mandate:{"valid_from":"2026-01-01T00:00:00Z","valid_until":"2041-12-31T00:00:00Z","max_amount":1000}]'
cases:
  - name: bob pays 250 for alice
    request: {subject: {type: user, id: bob}, action: {name: make_payment}, resource: {type: account, id: acc-alice}, context: {amount: 250}}
    expect: {decision: true, policies: [pay-with-authority]}
  - name: bob cannot pay 1500
    request: {subject: {type: user, id: bob}, action: {name: make_payment}, resource: {type: account, id: acc-alice}, context: {amount: 1500}}
    expect: {decision: false, reasons: [no_relationship]}
`
	files["tests/nobody_test.yaml"] = `
name: a suite without relationships sees none of the other suite's
cases:
  - name: alice is not the owner here
    request: {subject: {type: user, id: alice}, action: {name: view_statements}, resource: {type: account, id: acc-alice}}
    expect: {decision: false, reasons: [no_relationship]}
`
	dir := writeBundle(t, files)
	var out bytes.Buffer
	code := run(context.Background(), []string{"test", dir}, strings.NewReader(""), &out, io.Discard)
	if code != exitOK || !strings.Contains(out.String(), "3 passed, 0 failed") {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
}

// TestReloadRejectsASchemaSpiceDBRefuses: a new version whose SpiceDB
// schema SpiceDB refuses is rejected before it serves;
// the active version keeps answering.
func TestReloadRejectsASchemaSpiceDBRefuses(t *testing.T) {
	dir := writeBundle(t, factsBundle)
	t.Setenv("PDP_RELATIONS_BOOTSTRAP", filepath.Join(dir, "relationships.txt"))
	s := startServer(t, "--dir", dir, "--reload-interval", "50ms")
	before := s.policies(t)
	bob := `{"subject": {"type": "user", "id": "bob"}, "action": {"name": "make_payment"}, "resource": {"type": "account", "id": "acc-alice"}, "context": {"amount": 250}}`
	if d := s.evaluate(t, bob); !d.Decision {
		t.Fatalf("bob pays before the change: %v", d.Context.Reasons)
	}
	// A schema SpiceDB cannot take (an owner of a type it does not define).
	zed := strings.Replace(factsBundle["schema/bank.zed"], "relation owner: user", "relation owner: nosuchtype", 1)
	writeFile(t, filepath.Join(dir, "schema", "bank.zed"), zed)
	eventually(t, "the version is rejected", func() bool { return s.policies(t).LastError != "" || s.policies(t).Active.Hash != before.Active.Hash })
	st := s.policies(t)
	if st.Active.Hash != before.Active.Hash || !strings.Contains(st.LastError, "SpiceDB refused the schema") {
		t.Fatalf("status after the refused change: %+v", st)
	}
	if d := s.evaluate(t, bob); !d.Decision {
		t.Fatalf("bob pays after the refused change: %v", d.Context.Reasons)
	}
}
