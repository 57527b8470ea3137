package policytest_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/policytest"
)

const testSchema = `
entity Group;
entity User in [Group] { level?: Long };
entity Doc { owner?: String };
action view, delete appliesTo { principal: User, resource: Doc };
`

const testPolicies = `
@id("view-all")
@obligation("log_access")
permit (principal, action == Action::"view", resource);

@id("owner-deletes")
permit (principal == User::"alice", action == Action::"delete", resource)
when { resource has owner && resource.owner == "alice" };

@id("no-deletes-on-d2")
@reason("deletes_disabled")
forbid (principal, action == Action::"delete", resource == Doc::"d2");
`

// bundle writes a tiny bundle into a temporary folder and loads it.
func bundle(t *testing.T) *policy.Bundle {
	t.Helper()
	root := t.TempDir()
	for name, content := range map[string]string{
		"schema/docs.cedarschema": testSchema,
		"policies/docs.cedar":     testPolicies,
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := policy.Load(context.Background(), policy.DirsFor(root))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const runSuite = `name: docs
cases:
  - name: alice views
    request: {subject: {type: user, id: alice}, action: {name: view}, resource: {type: doc, id: d1}}
    expect: {decision: true, policies: [view-all], obligations: [log_access]}
  - name: alice deletes her doc
    request: {subject: {type: user, id: alice}, action: {name: delete}, resource: {type: doc, id: d1, properties: {owner: alice}}}
    expect: {decision: true, policies: [owner-deletes], obligations: []}
  - name: nobody deletes d2
    request: {subject: {type: user, id: alice}, action: {name: delete}, resource: {type: doc, id: d2, properties: {owner: alice}}}
    expect: {decision: false, policies: [no-deletes-on-d2], reasons: [deletes_disabled]}
  - name: wrong on purpose
    request: {subject: {type: user, id: bob}, action: {name: delete}, resource: {type: doc, id: d1, properties: {owner: alice}}}
    expect: {decision: true, policies: [owner-deletes]}
batches:
  - name: view and delete
    request:
      subject: {type: user, id: alice}
      resource: {type: doc, id: d2}
      evaluations: [{action: {name: view}}, {action: {name: delete}}]
    expect: [true, false]
  - name: deny_on_first_deny truncates
    request:
      subject: {type: user, id: bob}
      resource: {type: doc, id: d1}
      options: {evaluations_semantic: deny_on_first_deny}
      evaluations: [{action: {name: view}}, {action: {name: delete}}, {action: {name: view}}]
    expect: [true, false]
  - name: wrong batch on purpose
    request:
      subject: {type: user, id: bob}
      action: {name: view}
      evaluations: [{resource: {type: doc, id: d1}}, {resource: {type: spaceship, id: s}}]
    expect: [true, true]
`

func TestRunAgainstEngine(t *testing.T) {
	s, err := policytest.ParseSuite("docs_test.yaml", []byte(runSuite))
	if err != nil {
		t.Fatal(err)
	}
	engine := pdp.NewEngine(pdp.Components{Bundles: bundle(t)})
	r := policytest.Run(context.Background(), engine, []policytest.Suite{s})

	if r.Passed != 5 || r.Failed != 2 || len(r.Results) != 7 {
		var buf bytes.Buffer
		_ = r.Write(&buf, true)
		t.Fatalf("passed %d, failed %d, results %d; report:\n%s", r.Passed, r.Failed, len(r.Results), buf.String())
	}
	for _, cr := range r.Results {
		wantPass := !strings.Contains(cr.Name, "on purpose")
		if cr.Passed != wantPass {
			t.Errorf("%s: passed = %t, failures %v", cr.Name, cr.Passed, cr.Failures)
		}
	}

	failed := r.Results[3]
	if failed.File != "docs_test.yaml" || failed.Line != 12 || failed.Batch {
		t.Errorf("failed case located at %s:%d batch=%t", failed.File, failed.Line, failed.Batch)
	}
	if len(failed.Decisions) != 1 || failed.Decisions[0].Allowed {
		t.Errorf("failed case decisions = %+v", failed.Decisions)
	}

	var buf bytes.Buffer
	if err := r.Write(&buf, false); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"--- FAIL: docs / wrong on purpose (docs_test.yaml:12)",
		"    expected: decision=true policies=[owner-deletes]",
		"    got:      decision=false policies=[] reasons=[not_permitted]",
		"    decision: expected true, got false",
		"    policies: expected [owner-deletes], got []",
		"--- FAIL: docs / batch wrong batch on purpose (docs_test.yaml:",
		"    expected: [true, true]",
		"    got:      [true, false]",
		"    evaluation 2: expected true, got false",
		"reasons=[unknown_entity_type]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "PASS") {
		t.Errorf("a quiet report lists passing cases:\n%s", out)
	}
	if !strings.HasSuffix(out, "\n5 passed, 2 failed\n") {
		t.Errorf("report does not end with the totals:\n%s", out)
	}

	buf.Reset()
	_ = r.Write(&buf, true)
	if !strings.Contains(buf.String(), "--- PASS: docs / alice views (docs_test.yaml:3)") {
		t.Errorf("verbose report lacks the passing cases:\n%s", buf.String())
	}
}

// failing is a Decider that always fails, as an engine with no policy loaded.
type failing struct{}

func (failing) Decide(context.Context, pdp.Request) (pdp.Decision, error) {
	return pdp.Decision{}, pdp.ErrNotReady
}

func (failing) DecideBatch(context.Context, []pdp.Request) ([]pdp.Decision, error) {
	return nil, pdp.ErrNotReady
}

func TestRunDeciderError(t *testing.T) {
	s, err := policytest.ParseSuite("docs_test.yaml", []byte(runSuite))
	if err != nil {
		t.Fatal(err)
	}
	r := policytest.Run(context.Background(), failing{}, []policytest.Suite{s})
	if r.Passed != 0 || r.Failed != 7 {
		t.Fatalf("passed %d, failed %d", r.Passed, r.Failed)
	}
	for _, cr := range r.Results {
		if !errors.Is(cr.Err, pdp.ErrNotReady) {
			t.Errorf("%s: err = %v", cr.Name, cr.Err)
		}
	}
	var buf bytes.Buffer
	_ = r.Write(&buf, false)
	if !strings.Contains(buf.String(), "    error:    "+pdp.ErrNotReady.Error()) {
		t.Errorf("report lacks the error:\n%s", buf.String())
	}
}

func TestRunCancelled(t *testing.T) {
	s, err := policytest.ParseSuite("docs_test.yaml", []byte(runSuite))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := policytest.Run(ctx, pdp.NewEngine(pdp.Components{Bundles: bundle(t)}), []policytest.Suite{s})
	if r.Failed != 7 || !errors.Is(r.Results[0].Err, context.Canceled) {
		t.Errorf("failed %d, first err %v", r.Failed, r.Results[0].Err)
	}
}

func TestExpectCheck(t *testing.T) {
	d := pdp.Decision{Allowed: false, Policies: []string{"b", "a"}, Reasons: []string{"x", "y"}, Obligations: []string{}}
	tests := []struct {
		name   string
		expect policytest.Expect
		want   []string
	}{
		{"decision only", policytest.Expect{Decision: false}, nil},
		{"policies as a set", policytest.Expect{Policies: []string{"a", "b"}}, nil},
		{"reasons subset", policytest.Expect{Reasons: []string{"y"}}, nil},
		{"empty obligations", policytest.Expect{Obligations: []string{}}, nil},
		{"wrong decision", policytest.Expect{Decision: true}, []string{"decision: expected true, got false"}},
		{"missing policy", policytest.Expect{Policies: []string{"a"}}, []string{"policies: expected [a], got [b, a]"}},
		{"no policies expected", policytest.Expect{Policies: []string{}}, []string{"policies: expected [], got [b, a]"}},
		{"missing reason", policytest.Expect{Reasons: []string{"x", "z"}}, []string{"reasons: missing [z], got [x, y]"}},
		{"obligation expected", policytest.Expect{Obligations: []string{"o"}}, []string{"obligations: expected [o], got []"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.expect.Check(d)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("Check = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckBatch(t *testing.T) {
	if got := policytest.CheckBatch([]bool{true, false}, []bool{true, false}); got != nil {
		t.Errorf("equal: %q", got)
	}
	got := policytest.CheckBatch([]bool{true, false, true}, []bool{false, false})
	want := []string{"expected 3 decisions, got 2", "evaluation 1: expected true, got false"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("CheckBatch = %q, want %q", got, want)
	}
}
