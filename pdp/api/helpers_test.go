package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// env is a Server with the fake decider behind a real HTTP listener.
type env struct {
	t        *testing.T
	url      string
	srv      *Server
	decider  *fakeDecider
	policies *fakePolicies
	reg      *prometheus.Registry
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	e := &env{t: t, decider: &fakeDecider{}, policies: loadedPolicies(), reg: prometheus.NewRegistry()}
	srv, err := New(cfg, Deps{Decider: e.decider, Policies: e.policies, Registry: e.reg, Version: "v-test"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.srv = srv
	hs := httptest.NewServer(checkedByContract(t, srv.Handler()))
	t.Cleanup(hs.Close)
	e.url = hs.URL
	return e
}

// noContentType asks call to send no Content-Type header.
const noContentType = "-"

// call is one HTTP request; a POST defaults to Content-Type application/json.
type call struct {
	method      string
	path        string
	contentType string
	body        string
	header      map[string]string
}

func (e *env) do(c call) (*http.Response, []byte) {
	e.t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	var body io.Reader
	if c.method == http.MethodPost {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, e.url+c.path, body)
	if err != nil {
		e.t.Fatalf("NewRequest: %v", err)
	}
	switch {
	case c.contentType == noContentType:
	case c.contentType != "":
		req.Header.Set("Content-Type", c.contentType)
	case c.method == http.MethodPost:
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("read body: %v", err)
	}
	return res, b
}

// post sends body as JSON to path.
func (e *env) post(path, body string) (*http.Response, []byte) {
	e.t.Helper()
	return e.do(call{path: path, body: body})
}

// singleDecision checks a single-evaluation answer and returns its decision.
func singleDecision(t *testing.T, res *http.Response, body []byte) bool {
	t.Helper()
	obj := jsonObject(t, res, body)
	if _, ok := obj["evaluations"]; ok {
		t.Fatalf("single answer has evaluations: %s", body)
	}
	return decisionOf(t, obj, body)
}

// batchDecisions checks a batch answer and returns its decisions in order.
func batchDecisions(t *testing.T, res *http.Response, body []byte) []bool {
	t.Helper()
	obj := jsonObject(t, res, body)
	if _, ok := obj["decision"]; ok {
		t.Errorf("batch answer has a top-level decision: %s", body)
	}
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(obj["evaluations"], &items); err != nil || items == nil {
		t.Fatalf("evaluations is not an array (%v): %s", err, body)
	}
	out := make([]bool, len(items))
	for i, it := range items {
		out[i] = decisionOf(t, it, body)
	}
	return out
}

// jsonObject checks a 200 JSON answer and decodes its top-level object.
func jsonObject(t *testing.T, res *http.Response, body []byte) map[string]json.RawMessage {
	t.Helper()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		t.Fatalf("answer is not a JSON object (%v): %s", err, body)
	}
	return obj
}

// decisionOf checks that decision is a boolean and context, if present, an
// object.
func decisionOf(t *testing.T, obj map[string]json.RawMessage, body []byte) bool {
	t.Helper()
	var d bool
	if raw := string(obj["decision"]); raw != "true" && raw != "false" {
		t.Fatalf("decision %q is not a boolean: %s", raw, body)
	}
	_ = json.Unmarshal(obj["decision"], &d)
	if ctx, ok := obj["context"]; ok && !bytes.HasPrefix(ctx, []byte("{")) {
		t.Errorf("context is not an object: %s", body)
	}
	return d
}

// errorStatus checks an error answer: status, JSON {"error": one line}.
func errorStatus(t *testing.T, res *http.Response, body []byte, want int) {
	t.Helper()
	if res.StatusCode != want {
		t.Fatalf("status %d, want %d: %s", res.StatusCode, want, body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" || strings.ContainsAny(e.Error, "\r\n") {
		t.Errorf("error body %q is not {\"error\": one line}", body)
	}
}

func digest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Request fragments of the certification fixture.
const (
	subAlice   = `{"type":"user","id":"alice"}`
	subBob     = `{"type":"user","id":"bob","properties":{"role":"admin"}}`
	subBobBare = `{"type":"user","id":"bob"}`
	actRead    = `{"name":"read"}`
	actWrite   = `{"name":"write"}`
	res1       = `{"type":"record","id":"record-1","properties":{"status":"active"}}`
	res1Bare   = `{"type":"record","id":"record-1"}`
	res2       = `{"type":"record","id":"record-2","properties":{"status":"archived"}}`
)

// evalBody builds a single evaluation body from fragments.
func evalBody(subject, action, resource string) string {
	return `{"subject":` + subject + `,"action":` + action + `,"resource":` + resource + `}`
}
