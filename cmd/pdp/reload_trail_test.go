package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// The binary is built once per package run for the tests of this topic
// (the link takes a minute).
var (
	sharedBinOnce sync.Once
	sharedBin     string
	sharedBinErr  error
)

// sharedBinary builds the real binary once and returns its path.
func sharedBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIPPED in -short: builds and runs the real binary")
	}
	sharedBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pdp-bin-")
		if err != nil {
			sharedBinErr = err
			return
		}
		sharedBin = filepath.Join(dir, "pdp")
		if out, err := exec.Command("go", "build", "-o", sharedBin, ".").CombinedOutput(); err != nil {
			sharedBinErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if sharedBinErr != nil {
		t.Fatal(sharedBinErr)
	}
	return sharedBin
}

// pdpProc is a running pdp binary, its JSON log collected.
type pdpProc struct {
	URL    string
	cmd    *exec.Cmd
	logs   *logWatcher
	exited chan struct{}
	err    error // Wait's, once exited is closed
}

// procClient bounds every request: a hung server fails the test instead of
// hanging it.
var procClient = &http.Client{Timeout: 5 * time.Second}

// startProc runs `bin args…` with the environment plus env, and waits for
// the log line msg (listeningMsg, say) that carries the bound address.
func startProc(t *testing.T, bin, msg string, env []string, args ...string) *pdpProc {
	t.Helper()
	p := &pdpProc{logs: newLogWatcher(), exited: make(chan struct{})}
	p.logs.msg = msg
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	select {
	case addr := <-p.logs.listening:
		if msg == listeningMsg {
			trackPDP(t, addr)
		}
		p.URL = "http://" + addr
		return p
	case <-p.exited:
		t.Fatalf("%s exited before listening (%v); log:\n%s", args[0], p.err, p.logs)
	case <-time.After(90 * time.Second):
		t.Fatalf("%s did not log %q within 90s; log:\n%s", args[0], msg, p.logs)
	}
	return nil
}

// get sends a GET and returns the status and body; a timeout fails the test.
func (p *pdpProc) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	res, err := procClient.Get(p.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v; log:\n%s", path, err, p.logs)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

// evaluate posts one evaluation and decodes the answer.
func (p *pdpProc) evaluate(t *testing.T, body string) decision {
	t.Helper()
	res, err := procClient.Post(p.URL+"/access/v1/evaluation", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("evaluation: %v; log:\n%s", err, p.logs)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	var d decision
	if res.StatusCode != http.StatusOK || json.Unmarshal(data, &d) != nil {
		t.Fatalf("evaluation: %d %s", res.StatusCode, data)
	}
	return d
}

func (p *pdpProc) policies(t *testing.T) policyStatus {
	t.Helper()
	code, data := p.get(t, "/v1/policies")
	var st policyStatus
	if code != http.StatusOK || json.Unmarshal(data, &st) != nil {
		t.Fatalf("/v1/policies: %d %s", code, data)
	}
	return st
}

// signal sends sig and waits up to within for the process to exit; it
// returns how long that took and the exit code (-1: killed by a signal).
func (p *pdpProc) signal(t *testing.T, sig os.Signal, within time.Duration) (time.Duration, int) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("still running %v after %v; log:\n%s", within, sig, p.logs)
	}
	took := time.Since(start)
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return took, 0
	case errors.As(p.err, &ee):
		return took, ee.ExitCode()
	default:
		t.Fatalf("wait: %v", p.err)
	}
	return took, 0
}

// activations returns the policy versions (hash → source) whose
// activation the trail in dir records.
func activations(t *testing.T, dir string) map[string]string {
	t.Helper()
	l, err := trail.OpenFile(dir, trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out := map[string]string{}
	err = l.Scan(0, l.Size(), func(r trail.Record) error {
		if r.Kind != recorder.KindAdmin {
			return nil
		}
		var b struct {
			Action string `json:"action"`
			Target string `json:"target"`
			Detail struct {
				Source string `json:"source"`
			} `json:"detail"`
		}
		if err := json.Unmarshal(r.Body, &b); err != nil {
			return err
		}
		if b.Action == "policy.activate" {
			out[b.Target] = b.Detail.Source
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// viewerMayCreate is a policy that lets viewers create todos: a new
// version of the todo bundle.
const viewerMayCreate = `@id("todo-create-viewer")
permit (principal in Role::"viewer", action == Action::"can_create_todo", resource);
`

// TestHotReloadWithTrail is issue A1's regression test: with the decision
// trail on (the default, sync), a version added to a running server's
// folder, or committed to the Git remote it follows, becomes active;
// /v1/policies, /readyz and /metrics keep answering; the activation is in
// the trail; and SIGTERM stops the process. Before the fix the reloader
// deadlocked on its own lock (Prepare recorded the activation, which asked
// the reloader for its source).
func TestHotReloadWithTrail(t *testing.T) {
	bin := sharedBinary(t)
	createByBeth := evaluation(beth, "can_create_todo", mortyDoc)
	tests := []struct {
		name  string
		setup func(t *testing.T) (args []string, change func())
	}{
		{"folder", func(t *testing.T) ([]string, func()) {
			dir := copyBundle(t, todoDir)
			return []string{"--dir", dir, "--reload-interval", "50ms"}, func() {
				writeFile(t, filepath.Join(dir, "policies", "viewers.cedar"), viewerMayCreate)
			}
		}},
		{"git", func(t *testing.T) ([]string, func()) {
			remote := newPolicyRepo(t, todoDir)
			remote.commit(t, "todo policies")
			cfg := filepath.Join(t.TempDir(), "pdp.yaml")
			writeFile(t, cfg, strings.Join([]string{"policy:", "  git:",
				"    remote: " + remote.dir, "    branch: main",
				"    checkout: " + filepath.Join(t.TempDir(), "checkout"),
				"    pull_interval: 50ms", ""}, "\n"))
			return []string{"--config", cfg}, func() {
				writeFile(t, filepath.Join(remote.dir, "policies", "viewers.cedar"), viewerMayCreate)
				remote.commit(t, "viewers may create todos")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trailDir := filepath.Join(t.TempDir(), "trail")
			args, change := tt.setup(t)
			// The shipped trail defaults (sync, file); only its folder is the test's.
			p := startProc(t, bin, listeningMsg, []string{"PDP_TRAIL_DIR=" + trailDir, "PDP_LOG_FORMAT=json"},
				append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
			before := p.policies(t)
			if d := p.evaluate(t, createByBeth); d.Decision {
				t.Fatal("a viewer may create todos before the change")
			}
			change()
			var st policyStatus
			eventually(t, "the new version is active", func() bool {
				st = p.policies(t)
				return st.Active.Hash != before.Active.Hash
			})
			if st.LastError != "" {
				t.Errorf("last_error = %q", st.LastError)
			}
			if d := p.evaluate(t, createByBeth); !d.Decision || d.Context.PolicyVersion != st.Active.Hash {
				t.Errorf("after the change: decision %t by %s, want true by %s", d.Decision, d.Context.PolicyVersion, st.Active.Hash)
			}
			for _, path := range []string{"/readyz", "/metrics"} {
				if code, body := p.get(t, path); code != http.StatusOK {
					t.Errorf("GET %s: %d %s", path, code, body)
				}
			}
			if _, code := p.signal(t, syscall.SIGTERM, 15*time.Second); code != 0 {
				t.Errorf("exit code %d after SIGTERM; log:\n%s", code, p.logs)
			}
			acts := activations(t, trailDir)
			for _, h := range []string{before.Active.Hash, st.Active.Hash} {
				if src, ok := acts[h]; !ok || src != st.Source {
					t.Errorf("trail activation of %s: source %q (recorded: %t), want %q; all: %v", h, src, ok, st.Source, acts)
				}
			}
		})
	}
}
