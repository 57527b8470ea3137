package policytest_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/authzen"
	"github.com/ciampdp/pdp/pdp/policytest"
)

const validSuite = `# a comment
name: docs
application: billing
cases:
  - name: alice views
    request:
      subject: {type: user, id: alice, properties: {level: 3}}
      action: {name: view}
      resource: {type: doc, id: d1}
      context: {when: 2024-05-31T15:22:00Z}
    expect: {decision: true, policies: [view-all], obligations: [log_access]}
  - name: alice deletes
    request: {subject: {type: user, id: alice}, action: {name: delete}, resource: {type: doc, id: d1}}
    expect:
      decision: false
      policies: []
      reasons: [deletes_disabled]
batches:
  - name: view then delete
    request:
      subject: {type: user, id: alice}
      resource: {type: doc, id: d1}
      options: {evaluations_semantic: deny_on_first_deny}
      evaluations:
        - action: {name: view}
        - action: {name: delete}
    expect: [true, false]
`

func TestParseSuite(t *testing.T) {
	s, err := policytest.ParseSuite("docs_test.yaml", []byte(validSuite))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "docs" || s.Application != "billing" || s.File != "docs_test.yaml" {
		t.Errorf("suite header = %q %q %q", s.Name, s.Application, s.File)
	}
	if len(s.Cases) != 2 || len(s.Batches) != 1 {
		t.Fatalf("got %d cases, %d batches", len(s.Cases), len(s.Batches))
	}

	c := s.Cases[0]
	if c.Name != "alice views" || c.Line != 5 {
		t.Errorf("case 0 = %q at line %d", c.Name, c.Line)
	}
	r := c.Request
	if r.Subject.Type != "user" || r.Subject.ID != "alice" || r.Action.Name != "view" || r.Resource.ID != "d1" {
		t.Errorf("request = %+v", r)
	}
	if r.Application != "billing" {
		t.Errorf("application = %q", r.Application)
	}
	if !strings.Contains(string(c.Body), `"level":3`) {
		t.Errorf("body %s does not carry level as the JSON number 3", c.Body)
	}
	// A YAML timestamp reaches the PDP as the string it was written as.
	if got := r.Context["when"]; got != "2024-05-31T15:22:00Z" {
		t.Errorf("context.when = %#v", got)
	}
	var body map[string]any
	if err := json.Unmarshal(c.Body, &body); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if _, ok := body["subject"]; !ok {
		t.Errorf("body = %s", c.Body)
	}
	if !c.Expect.Decision || !slices.Equal(c.Expect.Policies, []string{"view-all"}) ||
		!slices.Equal(c.Expect.Obligations, []string{"log_access"}) || c.Expect.Reasons != nil {
		t.Errorf("expect 0 = %+v", c.Expect)
	}

	e := s.Cases[1].Expect
	if e.Decision || e.Policies == nil || len(e.Policies) != 0 || e.Obligations != nil {
		t.Errorf("expect 1 = %#v: want decision false, empty non-nil policies, nil obligations", e)
	}

	b := s.Batches[0]
	if b.Name != "view then delete" || b.Line != 19 || !slices.Equal(b.Expect, []bool{true, false}) {
		t.Errorf("batch = %q line %d expect %v", b.Name, b.Line, b.Expect)
	}
	if b.Eval.Single || b.Eval.Semantic != authzen.DenyOnFirstDeny || len(b.Eval.Requests) != 2 {
		t.Fatalf("batch eval = %+v", b.Eval)
	}
	for i, want := range []string{"view", "delete"} {
		rq := b.Eval.Requests[i]
		if rq.Action.Name != want || rq.Subject.ID != "alice" || rq.Resource.ID != "d1" || rq.Application != "billing" {
			t.Errorf("batch request %d = %+v", i, rq)
		}
	}
}

func TestParseSuiteDefaultsName(t *testing.T) {
	s, err := policytest.ParseSuite(filepath.Join("x", "plain_test.yaml"), []byte(`
cases:
  - name: c
    request: {subject: {type: user, id: a}, action: {name: view}, resource: {type: doc, id: d}}
    expect: {decision: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "plain_test.yaml" {
		t.Errorf("name = %q", s.Name)
	}
}

func TestParseSuiteErrors(t *testing.T) {
	const req = `{subject: {type: user, id: a}, action: {name: view}, resource: {type: doc, id: d}}`
	tests := []struct {
		name, yaml, want string
	}{
		{"syntax", "cases:\n  - name: [\n", "t_test.yaml:2: did not find expected node content"},
		{"empty", "", "t_test.yaml: empty test file"},
		{"not a mapping", "- a\n- b\n", "t_test.yaml:1: a test file is a mapping"},
		{"no cases", "name: x\n", "t_test.yaml:1: no cases and no batches"},
		{"unknown field", "name: x\ncasez: []\n", `t_test.yaml:2: unknown field "casez"`},
		{"duplicate key", "name: x\nname: y\ncases: []\n", `t_test.yaml:2: duplicate key "name"`},
		{"cases not a list", "cases: {a: 1}\n", "t_test.yaml:1: cases must be a list"},
		{"case not a mapping", "cases:\n  - just a string\n", "t_test.yaml:2: a case is a mapping"},
		{"case without name", "cases:\n  - request: " + req + "\n    expect: {decision: true}\n", "t_test.yaml:2: case without a name"},
		{"case without request", "cases:\n  - name: c\n    expect: {decision: true}\n", `t_test.yaml:2: case "c": no request`},
		{"case without expect", "cases:\n  - name: c\n    request: " + req + "\n", `t_test.yaml:2: case "c": no expect`},
		{"unknown case field", "cases:\n  - name: c\n    request: " + req + "\n    expect: {decision: true}\n    skip: true\n", `t_test.yaml:5: unknown field "skip"`},
		{"request not a mapping", "cases:\n  - name: c\n    request: [1]\n    expect: {decision: true}\n", `t_test.yaml:3: case "c": request must be a mapping`},
		{"request without subject", "cases:\n  - name: c\n    request: {action: {name: view}, resource: {type: doc, id: d}}\n    expect: {decision: true}\n", `t_test.yaml:3: case "c": request: `},
		{"request with NaN", "cases:\n  - name: c\n    request: {subject: {type: user, id: a, properties: {x: .nan}}, action: {name: view}, resource: {type: doc, id: d}}\n    expect: {decision: true}\n", `t_test.yaml:3: case "c": request: NaN is not a JSON number`},
		{"decision not a bool", "cases:\n  - name: c\n    request: " + req + "\n    expect: {decision: yes}\n", `t_test.yaml:4: case "c": expect.decision must be true or false`},
		{"no decision", "cases:\n  - name: c\n    request: " + req + "\n    expect: {policies: [p]}\n", `t_test.yaml:4: case "c": expect has no decision`},
		{"policies not a list", "cases:\n  - name: c\n    request: " + req + "\n    expect: {decision: true, policies: p}\n", `t_test.yaml:4: case "c": expect.policies must be a list`},
		{"unknown expect field", "cases:\n  - name: c\n    request: " + req + "\n    expect: {decision: true, reason: x}\n", `t_test.yaml:4: unknown field "reason"`},
		{"duplicate case names", "cases:\n  - name: c\n    request: " + req + "\n    expect: {decision: true}\n  - name: c\n    request: " + req + "\n    expect: {decision: true}\n", `t_test.yaml:5: duplicate name "c" (first at line 2)`},
		{"batch expect empty", "batches:\n  - name: b\n    request: " + req + "\n    expect: []\n", `t_test.yaml:4: batch "b": expect lists no decisions`},
		{"batch expect not bools", "batches:\n  - name: b\n    request: " + req + "\n    expect: [true, maybe]\n", `t_test.yaml:4: batch "b": expect must be true or false, not "maybe"`},
		{"batch bad semantic", "batches:\n  - name: b\n    request: {subject: {type: user, id: a}, action: {name: view}, options: {evaluations_semantic: some}, evaluations: [{resource: {type: doc, id: d}}]}\n    expect: [true]\n", `t_test.yaml:3: batch "b": request: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policytest.ParseSuite("t_test.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			var pe *policytest.Error
			if !errors.As(err, &pe) || pe.File != "t_test.yaml" {
				t.Errorf("error %#v is not an *Error naming the file", err)
			}
		})
	}
}

// TestParseSuiteReportsEveryProblem: an author sees all mistakes of a file
// at once, not one per run.
func TestParseSuiteReportsEveryProblem(t *testing.T) {
	_, err := policytest.ParseSuite("t_test.yaml", []byte(`
cases:
  - name: one
    request: {action: {name: view}}
    expect: {decision: true}
  - name: two
    request: {subject: {type: user, id: a}, action: {name: view}, resource: {type: doc, id: d}}
    expect: {decision: 1}
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"t_test.yaml:4:", "t_test.yaml:8:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestParseSuiteAliases(t *testing.T) {
	s, err := policytest.ParseSuite("t_test.yaml", []byte(`
cases:
  - name: first
    request: &req {subject: {type: user, id: a}, action: {name: view}, resource: {type: doc, id: d}}
    expect: &allow {decision: true}
  - name: second
    request: *req
    expect: *allow
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Cases) != 2 || s.Cases[1].Request.Subject.ID != "a" || !s.Cases[1].Expect.Decision {
		t.Errorf("cases = %+v", s.Cases)
	}
}

func TestLoadSuites(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	one := func(name string) string {
		return "name: " + name + "\ncases:\n  - name: c\n    request: {subject: {type: user, id: a}, action: {name: view}, resource: {type: doc, id: d}}\n    expect: {decision: true}\n"
	}
	write("b_test.yaml", one("b"))
	write("a/deep/a_test.yaml", one("a"))
	write("notes.yaml", "not: a test file\n")
	write("policies/x.cedar", "permit(principal, action, resource);\n")
	write(".git/hidden_test.yaml", "this would not parse: [")

	suites, err := policytest.LoadSuites(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range suites {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("suites = %v, want [a b] in path order", names)
	}
	if got := suites[0].File; got != filepath.Join(root, "a", "deep", "a_test.yaml") {
		t.Errorf("file = %q", got)
	}

	// One file may be named directly.
	suites, err = policytest.LoadSuites(filepath.Join(root, "b_test.yaml"))
	if err != nil || len(suites) != 1 || suites[0].Name != "b" {
		t.Errorf("single file: %v, %v", suites, err)
	}

	// Problems of several files come back together.
	write("c_test.yaml", "cases: 1\n")
	write("d_test.yaml", "name: [\n")
	_, err = policytest.LoadSuites(root)
	if err == nil {
		t.Fatal("no error for broken files")
	}
	for _, want := range []string{"c_test.yaml:1:", "d_test.yaml:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}

	// A folder without test files is no error.
	empty := t.TempDir()
	if suites, err := policytest.LoadSuites(empty); err != nil || len(suites) != 0 {
		t.Errorf("empty folder: %v, %v", suites, err)
	}
	if _, err := policytest.LoadSuites(filepath.Join(root, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing root: %v", err)
	}
}

func TestParseDelegationsAndNow(t *testing.T) {
	const cases = `
cases:
  - name: c
    request: {subject: {type: user, id: a}, action: {name: v}, resource: {type: account, id: x}}
    expect: {decision: false}
`
	s, err := policytest.ParseSuite("dir/t_test.yaml", []byte("now: \"2026-11-28T12:00:00Z\"\ndelegations: ../d.json\n"+cases))
	if err != nil {
		t.Fatal(err)
	}
	if s.Now != time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) || s.DelegationsFile != filepath.Join("dir", "..", "d.json") {
		t.Fatalf("now %v, file %q", s.Now, s.DelegationsFile)
	}
	s, err = policytest.ParseSuite("t_test.yaml", []byte("delegations:\n  - {id: d1, scope: [v]}\n"+cases))
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Delegations) != `[{"id":"d1","scope":["v"]}]` {
		t.Fatalf("inline delegations %s", s.Delegations)
	}
	for _, bad := range []string{"now: yesterday\n", "delegations: {id: d1}\n"} {
		if _, err := policytest.ParseSuite("t_test.yaml", []byte(bad+cases)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
