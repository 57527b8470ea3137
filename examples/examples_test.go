// Package examples_test checks that every example bundle decides its test
// suites the same way on every path: the engine called directly, a single
// evaluation over HTTP, all the single cases of a suite as one HTTP batch,
// and the suite's own batches over HTTP.
package examples_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/authzen"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/policytest"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
)

// withoutEntities lists, per example, the suites that must also pass when
// the bundle has no entities file, because their requests carry every fact
// the policies need as properties.
var withoutEntities = map[string][]string{
	"authzen-certification": {"tests/with_properties_test.yaml"},
}

func TestExamples(t *testing.T) {
	dirs := exampleBundles(t)
	if len(dirs) == 0 {
		t.Fatal("no example bundles found")
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			suites, err := policytest.LoadSuites(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(suites) == 0 {
				t.Fatalf("%s has no *_test.yaml suites", dir)
			}
			checkBundle(t, dir, suites)

			if files := withoutEntities[dir]; len(files) > 0 {
				t.Run("without entities", func(t *testing.T) {
					var only []policytest.Suite
					for _, s := range suites {
						for _, f := range files {
							if s.File == filepath.Join(dir, filepath.FromSlash(f)) {
								only = append(only, s)
							}
						}
					}
					if len(only) != len(files) {
						t.Fatalf("found %d of the suites %v", len(only), files)
					}
					checkBundle(t, copyWithoutEntities(t, dir), only)
				})
			}
		})
	}
}

// exampleBundles lists the folders beside this file that hold a bundle (a
// policies folder).
func exampleBundles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if fi, err := os.Stat(filepath.Join(e.Name(), "policies")); e.IsDir() && err == nil && fi.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// checkBundle loads the bundle at root and runs the suites on every path.
func checkBundle(t *testing.T, root string, suites []policytest.Suite) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := policy.Load(ctx, policy.DirsFor(root))
	if err != nil {
		t.Fatalf("load %s: %v", root, err)
	}
	// serve starts an HTTP server for one suite's engine: with an API key
	// for the suite's application when it names one, since over HTTP the
	// application comes only from authentication.
	serve := func(t *testing.T, engine *pdp.Engine, app string) httpClient {
		cfg := api.Config{}
		token := ""
		if app != "" {
			token = "test-key-for-" + app
			sum := sha256.Sum256([]byte(token))
			cfg.APIKeys = map[string]string{hex.EncodeToString(sum[:]): app}
		}
		srv, err := api.New(cfg, api.Deps{
			Decider:  engine,
			Searcher: engine,
			Policies: fixedStatus{b},
			Registry: prometheus.NewRegistry(),
		})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv.Handler())
		t.Cleanup(ts.Close)
		return httpClient{t: t, ctx: ctx, base: ts.URL, c: ts.Client(), token: token}
	}

	for _, s := range suites {
		t.Run(s.Name, func(t *testing.T) {
			// Each suite gets an engine with exactly its facts: its own
			// embedded SpiceDB and delegation records when it lists them.
			engine, done, err := policytest.NewEngine(ctx, b, s)
			if err != nil {
				t.Fatal(err)
			}
			defer done()
			h := serve(t, engine, s.Application)
			// (a) the engine, directly.
			report := policytest.Run(ctx, engine, []policytest.Suite{s})
			if report.Failed > 0 {
				var buf bytes.Buffer
				_ = report.Write(&buf, false)
				t.Errorf("engine:\n%s", buf.String())
			}
			// (b) each case as a single evaluation over HTTP.
			for _, c := range s.Cases {
				got := h.evaluation(c.Body)
				for _, f := range c.Expect.Check(got) {
					t.Errorf("HTTP evaluation %q (%s:%d): %s", c.Name, s.File, c.Line, f)
				}
			}
			// (c) all the cases as one batch over HTTP.
			if len(s.Cases) > 0 {
				items := make([]json.RawMessage, len(s.Cases))
				for i, c := range s.Cases {
					items[i] = c.Body
				}
				body, err := json.Marshal(map[string]any{"evaluations": items})
				if err != nil {
					t.Fatal(err)
				}
				got := h.evaluations(body, false)
				if len(got) != len(s.Cases) {
					t.Fatalf("HTTP batch of all cases: %d decisions for %d cases", len(got), len(s.Cases))
				}
				for i, c := range s.Cases {
					for _, f := range c.Expect.Check(got[i]) {
						t.Errorf("HTTP batch item %d, %q (%s:%d): %s", i+1, c.Name, s.File, c.Line, f)
					}
				}
			}
			// The suite's own batches over HTTP.
			for _, bc := range s.Batches {
				ds := h.evaluations(bc.Body, bc.Eval.Single)
				got := make([]bool, len(ds))
				for i, d := range ds {
					got[i] = d.Allowed
				}
				for _, f := range policytest.CheckBatch(bc.Expect, got) {
					t.Errorf("HTTP batch %q (%s:%d): %s", bc.Name, s.File, bc.Line, f)
				}
			}
		})
	}
}

// httpClient posts AuthZEN bodies and turns the answers back into the
// parts of a pdp.Decision that the wire carries.
type httpClient struct {
	t     *testing.T
	ctx   context.Context
	base  string
	c     *http.Client
	token string // bearer token; empty when the server has no keys
}

func (h httpClient) post(path string, body []byte) []byte {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, h.base+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := h.c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("POST %s %s: %s %s", path, body, resp.Status, out)
	}
	return out
}

func (h httpClient) evaluation(body []byte) pdp.Decision {
	h.t.Helper()
	var r authzen.DecisionResponse
	if err := json.Unmarshal(h.post("/access/v1/evaluation", body), &r); err != nil {
		h.t.Fatal(err)
	}
	return fromWire(r)
}

// evaluations posts a batch; single says the body has no items, so the
// answer is one decision.
func (h httpClient) evaluations(body []byte, single bool) []pdp.Decision {
	h.t.Helper()
	out := h.post("/access/v1/evaluations", body)
	if single {
		var r authzen.DecisionResponse
		if err := json.Unmarshal(out, &r); err != nil {
			h.t.Fatal(err)
		}
		return []pdp.Decision{fromWire(r)}
	}
	var r authzen.EvaluationsResponse
	if err := json.Unmarshal(out, &r); err != nil {
		h.t.Fatal(err)
	}
	ds := make([]pdp.Decision, len(r.Evaluations))
	for i, e := range r.Evaluations {
		ds[i] = fromWire(e)
	}
	return ds
}

func fromWire(r authzen.DecisionResponse) pdp.Decision {
	d := pdp.Decision{Allowed: r.Decision}
	if r.Context != nil {
		d.Policies, d.Reasons, d.Obligations = r.Context.Policies, r.Context.Reasons, r.Context.Obligations
		d.Message, d.Errors = r.Context.Message, r.Context.Errors
	}
	return d
}

// fixedStatus reports a bundle that never reloads.
type fixedStatus struct{ b *policy.Bundle }

func (s fixedStatus) Status() policy.Status {
	return policy.Status{
		Active:      s.b.Version(),
		LoadedAt:    s.b.LoadedAt(),
		Source:      s.b.Dirs().String(),
		Policies:    len(s.b.Policies()),
		LastAttempt: s.b.LoadedAt(),
	}
}

// copyWithoutEntities copies the bundle's policy and schema folders to a
// temporary folder, leaving out the entity files.
func copyWithoutEntities(t *testing.T, root string) string {
	t.Helper()
	dst := t.TempDir()
	d := policy.DirsFor(root)
	for name, src := range map[string]string{"policies": d.Policies, "schema": d.Schema} {
		err := filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			base := e.Name()
			if base == "entities.json" || strings.HasSuffix(base, ".entities.json") {
				return nil
			}
			if !strings.HasSuffix(base, ".cedar") && !strings.Contains(base, ".cedarschema") {
				return nil
			}
			rel, err := filepath.Rel(src, path)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out := filepath.Join(dst, name, rel)
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			return os.WriteFile(out, data, 0o644)
		})
		if err != nil {
			t.Fatal(fmt.Errorf("copy %s: %w", src, err))
		}
	}
	return dst
}

// TestCIWorkflow keeps the example workflow well-formed: it parses, and its
// job validates and then tests the bundle.
func TestCIWorkflow(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("ci", "policy-ci.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Jobs map[string]struct {
			Steps []struct {
				Run string `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatal(err)
	}
	var runs []string
	for _, job := range wf.Jobs {
		for _, s := range job.Steps {
			if s.Run != "" {
				runs = append(runs, s.Run)
			}
		}
	}
	want := []string{"go install ", "pdp validate ", "pdp test "}
	i := 0
	for _, r := range runs {
		if i < len(want) && strings.HasPrefix(r, want[i]) {
			i++
		}
	}
	if i != len(want) {
		t.Errorf("workflow steps %q do not run %q in that order", runs, want)
	}
}

// TestRootBundle runs the product's own bundle (../policies, ../schema) and
// its suites in ../tests through the same paths as the examples.
func TestRootBundle(t *testing.T) {
	suites, err := policytest.LoadSuites(filepath.Join("..", "tests"))
	if err != nil {
		t.Fatal(err)
	}
	if len(suites) == 0 {
		t.Fatal("../tests has no *_test.yaml suites")
	}
	checkBundle(t, "..", suites)
}
