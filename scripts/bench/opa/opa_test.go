package opa_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/authzen"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/policytest"
)

const (
	// bundleDir is the example whose Cedar policies todo.rego mirrors.
	bundleDir = "../../../examples/authzen-todo"
	// benchRequest is the body scripts/bench-trail-http.sh sends.
	benchRequest = "../todo-request.json"
)

// opaBinary finds the OPA binary the benchmark script would use, or skips
// the test: OPA is not a dependency of the module, and `go test ./...` must
// pass without it.
func opaBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("OPA"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("OPA=%s: %v", p, err)
		}
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "pdp-bench", "bin", "opa")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("opa"); err == nil {
		return p
	}
	t.Skip("OPA not found (set OPA=/path/to/opa, or: GOBIN=$HOME/.cache/pdp-bench/bin go install github.com/open-policy-agent/opa@v1.22.3)")
	return ""
}

// user is one entry of data.json's users.
type user struct {
	Name  string   `json:"name"`
	Email string   `json:"email"`
	Roles []string `json:"roles"`
}

// TestDataMatchesEntities keeps data.json equal to the users, emails and
// roles the Cedar bundle holds in policies/entities.json.
func TestDataMatchesEntities(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(bundleDir, "policies", "entities.json"))
	if err != nil {
		t.Fatal(err)
	}
	var entities []struct {
		UID struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"uid"`
		Attrs   map[string]any `json:"attrs"`
		Parents []struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"parents"`
	}
	if err := json.Unmarshal(raw, &entities); err != nil {
		t.Fatal(err)
	}
	want := map[string]user{}
	for _, e := range entities {
		if e.UID.Type != "User" {
			continue
		}
		u := user{Roles: []string{}}
		u.Name, _ = e.Attrs["name"].(string)
		u.Email, _ = e.Attrs["email"].(string)
		for _, p := range e.Parents {
			if p.Type != "Role" {
				t.Fatalf("user %s has a parent of type %s; todo.rego knows roles only", e.UID.ID, p.Type)
			}
			u.Roles = append(u.Roles, p.ID)
		}
		want[e.UID.ID] = u
	}
	raw, err = os.ReadFile("data.json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Users map[string]user `json:"users"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || !reflect.DeepEqual(got.Users, want) {
		t.Errorf("data.json users differ from %s/policies/entities.json:\n got %+v\nwant %+v", bundleDir, got.Users, want)
	}
}

// probe is one request both engines decide; want is the decision a test
// suite of the example expects, when one does.
type probe struct {
	name string
	req  pdp.Request
	want *bool
}

// TestRegoDecidesAsCedar decides every request of the example's test suites
// (single cases and the items of every batch), the benchmark's request and
// a cross product of users, actions, subject and resource shapes with the
// PDP's engine on the Cedar bundle and with OPA on todo.rego, and wants the
// same decision from both (and the suites' expected ones).
func TestRegoDecidesAsCedar(t *testing.T) {
	opa := opaBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	probes := suiteProbes(t)
	probes = append(append(probes, benchProbe(t)), crossProbes()...)

	b, err := policy.Load(ctx, policy.DirsFor(bundleDir))
	if err != nil {
		t.Fatal(err)
	}
	engine := pdp.NewEngine(pdp.Components{Bundles: b})
	// Both see the same bytes: the PDP decodes each request as its HTTP
	// API does, OPA gets it as input.
	bodies := make([]json.RawMessage, len(probes))
	cedar := make([]bool, len(probes))
	reasons := make([][]string, len(probes))
	for i, p := range probes {
		if bodies[i], err = json.Marshal(p.req); err != nil {
			t.Fatal(err)
		}
		req, err := authzen.DecodeEvaluation(bodies[i])
		if err != nil {
			t.Fatalf("%s: decode %s: %v", p.name, bodies[i], err)
		}
		d, err := engine.Decide(ctx, req)
		if err != nil {
			t.Fatalf("%s: engine: %v", p.name, err)
		}
		cedar[i], reasons[i] = d.Allowed, d.Reasons
	}

	rego, err := evalRego(ctx, opa, bodies)
	if err != nil {
		t.Fatal(err)
	}
	allowed := 0
	for i, p := range probes {
		if p.want != nil && cedar[i] != *p.want {
			t.Errorf("%s: the PDP decided %v, the suite expects %v", p.name, cedar[i], *p.want)
		}
		if rego[i] != cedar[i] {
			t.Errorf("%s: OPA decided %v, the PDP %v %v; request %s", p.name, rego[i], cedar[i], reasons[i], bodies[i])
		}
		if cedar[i] {
			allowed++
		}
	}
	if !t.Failed() {
		t.Logf("%d requests, %d allowed, %d denied: OPA and the PDP agree", len(probes), allowed, len(probes)-allowed)
	}
}

// suiteProbes gives the requests of the example's own test suites.
func suiteProbes(t *testing.T) []probe {
	t.Helper()
	suites, err := policytest.LoadSuites(bundleDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []probe
	for _, s := range suites {
		for _, c := range s.Cases {
			want := c.Expect.Decision
			out = append(out, probe{name: fmt.Sprintf("%s:%d %s", s.File, c.Line, c.Name), req: c.Request, want: &want})
		}
		for _, bc := range s.Batches {
			// A short-circuit batch answers only its first decisions; those
			// are what each item decides alone.
			for i, r := range bc.Eval.Requests {
				p := probe{name: fmt.Sprintf("%s:%d %s, item %d", s.File, bc.Line, bc.Name, i), req: r}
				if i < len(bc.Expect) {
					want := bc.Expect[i]
					p.want = &want
				}
				out = append(out, p)
			}
		}
	}
	if len(out) < 40 {
		t.Fatalf("only %d requests in %s's suites", len(out), bundleDir)
	}
	return out
}

// benchProbe is the benchmark's request, which must be allowed.
func benchProbe(t *testing.T) probe {
	t.Helper()
	raw, err := os.ReadFile(benchRequest)
	if err != nil {
		t.Fatal(err)
	}
	var req pdp.Request
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Fatalf("%s: %v", benchRequest, err)
	}
	allow := true
	return probe{name: "the benchmark's request", req: req, want: &allow}
}

// crossProbes covers what the suites do not spell out: every user (one the
// bundle does not know, and subjects of type role) with every action, on
// todos of every owner, a todo without an owner or with an owner that is
// not a string, users and roles as resources, unknown types, undeclared
// and ill-typed properties, and a subject claiming an admin's email and
// roles.
func crossProbes() []probe {
	pids := []string{"not-a-known-pid"}
	emails := []any{"nobody@example.com"}
	for i := range 5 {
		pids = append(pids, fmt.Sprintf("CiRmZD%d2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs", i))
	}
	emails = append(emails, "rick@the-citadel.com", "morty@the-citadel.com", "summer@the-smiths.com",
		"beth@the-smiths.com", "jerry@the-smiths.com", 7, "")
	actions := []string{"can_read_user", "can_read_todos", "can_create_todo", "can_update_todo", "can_delete_todo", "can_launch_todo"}
	resources := []pdp.Entity{
		{Type: "todo", ID: "todo-1"},
		{Type: "Todo", ID: "todo-2", Properties: map[string]any{"ownerID": "morty@the-citadel.com"}},
		{Type: "user", ID: "beth@the-smiths.com"},
		{Type: "spaceship", ID: "enterprise", Properties: map[string]any{"ownerID": "morty@the-citadel.com"}},
		{Type: "role", ID: "admin"},
		{Type: "todo", ID: "t", Properties: map[string]any{"ownerID": "morty@the-citadel.com", "color": "red"}},
		{Type: "todo", ID: "t", Properties: map[string]any{"ownerID": nil}},
		{Type: "user", ID: "beth@the-smiths.com", Properties: map[string]any{"email": 7}},
		{Type: "user", ID: "beth@the-smiths.com", Properties: map[string]any{"ownerID": "morty@the-citadel.com"}},
	}
	for _, e := range emails {
		resources = append(resources, pdp.Entity{Type: "todo", ID: "t", Properties: map[string]any{"ownerID": e}})
	}
	subjects := []func(pid string) pdp.Entity{
		func(pid string) pdp.Entity { return pdp.Entity{Type: "user", ID: pid} },
		func(pid string) pdp.Entity { return pdp.Entity{Type: "USER", ID: pid} },
		func(pid string) pdp.Entity { return pdp.Entity{Type: "todo", ID: pid} },
		func(pid string) pdp.Entity { return pdp.Entity{Type: "role", ID: pid} },
		func(pid string) pdp.Entity {
			return pdp.Entity{Type: "user", ID: pid, Properties: map[string]any{"email": 7}}
		},
		func(pid string) pdp.Entity {
			return pdp.Entity{Type: "user", ID: pid, Properties: map[string]any{
				"email": "rick@the-citadel.com", "roles": []any{"admin", "evil_genius"}}}
		},
	}
	// A subject of type role would be a member of itself (Cedar's `in` is
	// reflexive) and take the permits of that role, but no action applies
	// to a role: both must refuse it (entity_type_mismatch in the PDP).
	for _, r := range []string{"admin", "editor", "evil_genius", "viewer"} {
		pids = append(pids, r)
	}
	var out []probe
	for _, pid := range pids {
		for si, subject := range subjects {
			for _, a := range actions {
				for _, r := range resources {
					out = append(out, probe{
						name: fmt.Sprintf("cross: subject %s (shape %d), %s, %s %v", pid, si, a, r.Type, r.Properties),
						req:  pdp.Request{Subject: subject(pid), Action: pdp.Action{Name: a}, Resource: r},
					})
				}
			}
		}
	}
	return out
}

// evalRego decides all the request bodies with one `opa eval` of todo.rego.
func evalRego(ctx context.Context, opa string, bodies []json.RawMessage) ([]bool, error) {
	input, err := json.Marshal(map[string]any{"requests": bodies})
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, opa, "eval", "--format", "json", "--stdin-input",
		"--data", "todo.rego", "--data", "data.json",
		"[d | some r in input.requests; d := data.todo.allow with input as r]")
	cmd.Stdin = bytes.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("opa eval: %w: %s", err, stderr.String())
	}
	var res struct {
		Result []struct {
			Expressions []struct {
				Value []bool `json:"value"`
			} `json:"expressions"`
		} `json:"result"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("opa eval output: %w: %s", err, out)
	}
	if len(res.Result) != 1 || len(res.Result[0].Expressions) != 1 || len(res.Result[0].Expressions[0].Value) != len(bodies) {
		return nil, fmt.Errorf("opa eval gave no decision per request: %s", out)
	}
	return res.Result[0].Expressions[0].Value, nil
}

// TestOPAServerAnswersBenchRequest runs OPA as the benchmark script does
// (opa run --server on loopback, decision logs off and to the console) and
// sends it the benchmark's request the way wrk does: POST
// /v1/data/todo/allow with {"input": request}.
func TestOPAServerAnswersBenchRequest(t *testing.T) {
	opa := opaBinary(t)
	body, err := os.ReadFile(benchRequest)
	if err != nil {
		t.Fatal(err)
	}
	wrapped := append(append([]byte(`{"input":`), bytes.TrimSpace(body)...), '}')
	for _, tc := range []struct {
		name    string
		args    []string
		console bool
	}{
		{name: "decision logs off"},
		{name: "decision logs to the console", args: []string{"--set", "decision_logs.console=true"}, console: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			console := filepath.Join(t.TempDir(), "console.log")
			logf, err := os.Create(console)
			if err != nil {
				t.Fatal(err)
			}
			defer logf.Close()
			args := append([]string{"run", "--server", "--addr", addr, "--skip-version-check", "--log-level", "error"}, tc.args...)
			cmd := exec.Command(opa, append(args, "todo.rego", "data.json")...)
			cmd.Stdout, cmd.Stderr = logf, logf
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			base := "http://" + addr
			waitHealthy(t, base)

			resp, err := http.Post(base+"/v1/data/todo/allow", "application/json", bytes.NewReader(wrapped))
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Result     *bool  `json:"result"`
				DecisionID string `json:"decision_id"`
			}
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || got.Result == nil || !*got.Result {
				t.Fatalf("status %d, answer %+v, err %v; want 200 and result true", resp.StatusCode, got, err)
			}
			if !tc.console {
				return
			}
			// The console decision log is written after the answer.
			deadline := time.Now().Add(5 * time.Second)
			for {
				logged, _ := os.ReadFile(console)
				if bytes.Contains(logged, []byte(`"msg":"Decision Log"`)) && bytes.Contains(logged, []byte(got.DecisionID)) &&
					bytes.Contains(logged, []byte(`morty@the-citadel.com`)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no decision log line for %s on the console:\n%s", got.DecisionID, logged)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// freeAddr gives a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitHealthy waits for OPA's /health to answer 200.
func waitHealthy(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = errors.New(resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("OPA at %s not healthy: %v", base, last)
}
