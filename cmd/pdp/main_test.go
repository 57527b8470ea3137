package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The example bundles, from this package's folder.
const (
	todoDir          = "../../examples/authzen-todo"
	certificationDir = "../../examples/authzen-certification"
)

// Subjects and resources of the todo example.
const (
	morty    = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs" // editor
	beth     = "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs" // viewer
	mortyDoc = `{"type": "todo", "id": "t1", "properties": {"ownerID": "morty@the-citadel.com"}}`
	rickDoc  = `{"type": "todo", "id": "t2", "properties": {"ownerID": "rick@the-citadel.com"}}`
)

func evaluation(subject, action, resource string) string {
	return `{"subject": {"type": "user", "id": "` + subject + `"}, "action": {"name": "` + action + `"}, "resource": ` + resource + `}`
}

// server is a `pdp serve` started through run, as main starts it.
type server struct {
	URL  string
	logs *logWatcher
	stop func(t *testing.T) // stops it gracefully (also done at cleanup)
}

// startServer runs `pdp serve --addr 127.0.0.1:0 args…` until the test
// ends, waits for its "listening" log line and takes the bound address from
// it. The server must then stop cleanly, with exit code 0.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogWatcher()
	done := make(chan int, 1)
	argv := append(append([]string{"serve", "--addr", "127.0.0.1:0", "--reload-interval", "0"}, testTrailArgs(t)...), args...)
	go func() { done <- run(ctx, argv, strings.NewReader(""), io.Discard, logs) }()
	var once sync.Once
	stop := func(t *testing.T) {
		once.Do(func() {
			cancel()
			select {
			case code := <-done:
				if code != exitOK {
					t.Errorf("serve exited with %d after shutdown; log:\n%s", code, logs)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("serve did not stop within 20s; log:\n%s", logs)
			}
		})
	}
	t.Cleanup(func() { stop(t) })
	select {
	case addr := <-logs.listening:
		trackPDP(t, addr)
		return &server{URL: "http://" + addr, logs: logs, stop: stop}
	case code := <-done:
		done <- code
		t.Fatalf("serve exited with %d before listening; log:\n%s", code, logs)
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not log %q within 20s; log:\n%s", listeningMsg, logs)
	}
	return nil
}

// logWatcher collects the JSON log of a server and reports the address of
// its "listening" line.
type logWatcher struct {
	mu        sync.Mutex
	all       bytes.Buffer
	partial   []byte
	records   []map[string]any
	listening chan string
	msg       string // the message that carries the address; default listeningMsg
}

func newLogWatcher() *logWatcher {
	return &logWatcher{listening: make(chan string, 1), msg: listeningMsg}
}

func (l *logWatcher) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		var rec map[string]any
		if json.Unmarshal(l.partial[:i], &rec) == nil {
			l.records = append(l.records, rec)
			if rec["msg"] == l.msg {
				addr, _ := rec["addr"].(string)
				select {
				case l.listening <- addr:
				default:
				}
			}
		}
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

func (l *logWatcher) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// find returns the first record with the level and message.
func (l *logWatcher) find(level, msg string) map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if r["level"] == level && strings.Contains(r["msg"].(string), msg) {
			return r
		}
	}
	return nil
}

// do sends a request and returns the status and body.
func (s *server) do(t *testing.T, method, path, body string, header ...string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, data
}

// decision is the part of an evaluation answer the tests look at.
type decision struct {
	Decision bool `json:"decision"`
	Context  struct {
		PolicyVersion string   `json:"policy_version"`
		Policies      []string `json:"policies"`
		Reasons       []string `json:"reasons"`
	} `json:"context"`
}

func (s *server) evaluate(t *testing.T, body string, header ...string) decision {
	t.Helper()
	code, data := s.do(t, http.MethodPost, "/access/v1/evaluation", body, header...)
	if code != http.StatusOK {
		t.Fatalf("evaluation: status %d: %s", code, data)
	}
	var d decision
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("evaluation answer %s: %v", data, err)
	}
	return d
}

// policyStatus is the part of GET /v1/policies the tests look at.
type policyStatus struct {
	Active struct {
		Hash   string `json:"hash"`
		Commit string `json:"commit"`
	} `json:"active"`
	Source    string `json:"source"`
	LastError string `json:"last_error"`
	Reloads   int    `json:"reloads"`
	Failures  int    `json:"failures"`
}

func (s *server) policies(t *testing.T, header ...string) policyStatus {
	t.Helper()
	code, data := s.do(t, http.MethodGet, "/v1/policies", "", header...)
	if code != http.StatusOK {
		t.Fatalf("/v1/policies: status %d: %s", code, data)
	}
	var st policyStatus
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("/v1/policies answer %s: %v", data, err)
	}
	return st
}

// metric returns the value of an unlabelled metric on /metrics.
func (s *server) metric(t *testing.T, name string) float64 {
	t.Helper()
	code, data := s.do(t, http.MethodGet, "/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d", code)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not found on /metrics", name)
	return 0
}

// eventually polls cond until it holds or 15s passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// copyBundle copies an example bundle into a fresh temporary folder.
func copyBundle(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "bundle")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// writeFile replaces a file atomically, so that a reloading server never
// sees it half written.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestServeExample(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--dir", todoDir)

	if w := s.logs.find("WARN", "authentication is off"); w == nil {
		t.Errorf("no Warn line about authentication being off; log:\n%s", s.logs)
	}
	l := s.logs.find("INFO", listeningMsg)
	if v, _ := l["policy_version"].(string); !strings.HasPrefix(v, "sha256:") {
		t.Errorf("listening line without policy_version: %v", l)
	}

	tests := []struct {
		name, body string
		allowed    bool
		policies   []string
	}{
		{"an editor completes his own todo", evaluation(morty, "can_update_todo", mortyDoc), true, []string{"todo-update-own-editor"}},
		{"an editor cannot complete another's todo", evaluation(morty, "can_update_todo", rickDoc), false, []string{}},
		{"a viewer cannot create a todo", evaluation(beth, "can_create_todo", rickDoc), false, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.evaluate(t, tt.body)
			if d.Decision != tt.allowed {
				t.Errorf("decision = %t, want %t", d.Decision, tt.allowed)
			}
			if strings.Join(d.Context.Policies, ",") != strings.Join(tt.policies, ",") {
				t.Errorf("policies = %v, want %v", d.Context.Policies, tt.policies)
			}
		})
	}

	for _, path := range []string{"/readyz", "/healthz", "/.well-known/authzen-configuration"} {
		if code, body := s.do(t, http.MethodGet, path, ""); code != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	if st := s.policies(t); st.Active.Hash == "" || st.Reloads != 1 {
		t.Errorf("policy status = %+v, want one active version", st)
	}
}

func TestServeAPIKeys(t *testing.T) {
	t.Parallel()
	const key = "0123456789abcdef0123456789abcdef-test-key"
	var digest bytes.Buffer
	if code := run(t.Context(), []string{"hash-key"}, strings.NewReader(key+"\n"), &digest, io.Discard); code != exitOK {
		t.Fatalf("hash-key exited with %d", code)
	}
	cfg := filepath.Join(t.TempDir(), "pdp.yaml")
	writeFile(t, cfg, "auth:\n  api_keys:\n    - {application: todo-backend, sha256: "+strings.TrimSpace(digest.String())+"}\n")
	s := startServer(t, "--config", cfg, "--dir", todoDir)

	if w := s.logs.find("WARN", "authentication is off"); w != nil {
		t.Errorf("Warn about authentication with keys configured: %v", w)
	}
	body := evaluation(morty, "can_update_todo", mortyDoc)
	tests := []struct {
		name   string
		header []string
		want   int
	}{
		{"no key", nil, http.StatusUnauthorized},
		{"wrong key", []string{"Authorization", "Bearer nope"}, http.StatusUnauthorized},
		{"bearer key", []string{"Authorization", "Bearer " + key}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, data := s.do(t, http.MethodPost, "/access/v1/evaluation", body, tt.header...); code != tt.want {
				t.Errorf("status %d, want %d: %s", code, tt.want, data)
			}
		})
	}
	if code, _ := s.do(t, http.MethodGet, "/readyz", ""); code != http.StatusOK {
		t.Errorf("/readyz needs no key, got %d", code)
	}
}

func TestServeRefusesNonLoopbackWithoutKeys(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0", "pdp.example:8080"} {
		t.Run(addr, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(t.Context(), append([]string{"serve", "--dir", todoDir, "--addr", addr}, testTrailArgs(t)...), strings.NewReader(""), io.Discard, &stderr)
			if code != exitFailure {
				t.Errorf("exit code %d, want %d", code, exitFailure)
			}
			if !strings.Contains(stderr.String(), "loopback") || !strings.Contains(stderr.String(), "auth.api_keys") {
				t.Errorf("the refusal does not say why:\n%s", stderr.String())
			}
		})
	}
}

func TestServeRefusesBrokenBundle(t *testing.T) {
	t.Parallel()
	dir := copyBundle(t, todoDir)
	writeFile(t, filepath.Join(dir, "policies", "broken.cedar"), brokenPolicy)
	var stderr bytes.Buffer
	code := run(t.Context(), append([]string{"serve", "--dir", dir, "--addr", "127.0.0.1:0"}, testTrailArgs(t)...), strings.NewReader(""), io.Discard, &stderr)
	if code != exitFailure {
		t.Fatalf("exit code %d, want %d", code, exitFailure)
	}
	want := filepath.Join(dir, "policies", "broken.cedar") + ":"
	if !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), `policy "todo-broken"`) {
		t.Errorf("stderr does not name %s and the policy:\n%s", want, stderr.String())
	}
}

// brokenPolicy names an action the todo schema does not declare.
const brokenPolicy = `// A policy for an action that does not exist.
@id("todo-broken")
permit (principal, action == Action::"can_fly", resource);
`

func TestSignalStopsServer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	logs := newLogWatcher()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--dir", todoDir, "--addr", "127.0.0.1:0"}, testTrailArgs(t)...), strings.NewReader(""), io.Discard, logs)
	}()
	select {
	case <-logs.listening:
	case <-time.After(20 * time.Second):
		t.Fatalf("not listening; log:\n%s", logs)
	}
	cancel() // what signal.NotifyContext does on SIGINT or SIGTERM
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit code %d after shutdown", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	if logs.find("INFO", "stopped") == nil {
		t.Errorf("no 'stopped' line; log:\n%s", logs)
	}
}
