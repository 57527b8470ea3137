package main

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
	"github.com/ciampdp/pdp/pdp/trail"
)

// TestMain runs the tests on the shipped defaults: the decision trail is on
// (sync). Many servers start in parallel from this folder and two may not
// share one trail directory, so PDP_TRAIL_DIR points at a throwaway folder
// and startServer gives every server a trail directory of its own (see
// testTrailArgs). A test that turns the trail off says why.
func TestMain(m *testing.M) {
	root, err := os.MkdirTemp("", "pdp-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defaultTestTrailDir = filepath.Join(root, "trail")
	if os.Getenv("PDP_TRAIL_DIR") == "" {
		_ = os.Setenv("PDP_TRAIL_DIR", defaultTestTrailDir)
	}
	code := m.Run()
	_ = os.RemoveAll(root)
	if sharedBin != "" {
		_ = os.RemoveAll(filepath.Dir(sharedBin))
	}
	os.Exit(code)
}

// defaultTestTrailDir is the PDP_TRAIL_DIR TestMain sets.
var defaultTestTrailDir string

// testTrailArgs gives a server its own trail directory (--trail-dir),
// unless the test chose one in PDP_TRAIL_DIR.
func testTrailArgs(t *testing.T) []string {
	t.Helper()
	if os.Getenv("PDP_TRAIL_DIR") != defaultTestTrailDir {
		return nil
	}
	return []string{"--trail-dir", filepath.Join(t.TempDir(), "trail")}
}

// answer is the part of an evaluation answer the trail tests need.
type answer struct {
	Decision bool `json:"decision"`
	Context  struct {
		DecisionID string   `json:"decision_id"`
		Reasons    []string `json:"reasons"`
	} `json:"context"`
}

var trailClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}

// ask sends one todo evaluation and returns its answer.
func ask(url string, i int) (answer, error) {
	body := evaluation(morty, "can_read_todos", fmt.Sprintf(`{"type": "todo", "id": "t%d"}`, i))
	res, err := trailClient.Post(url+"/access/v1/evaluation", "application/json", strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return answer{}, err
	}
	if res.StatusCode != http.StatusOK {
		return answer{}, fmt.Errorf("status %d: %s", res.StatusCode, data)
	}
	var a answer
	if err := json.Unmarshal(data, &a); err != nil {
		return answer{}, fmt.Errorf("answer %s: %w", data, err)
	}
	return a, nil
}

// logRun runs `pdp log args…` and returns its exit code and output.
func logRun(args ...string) (int, string, string) {
	var out, errOut strings.Builder
	code := run(context.Background(), append([]string{"log"}, args...), strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// trailIDs returns the decision ids in the trail in dir.
func trailIDs(t *testing.T, dir string) map[string]bool {
	t.Helper()
	l, err := trail.OpenFile(dir, trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ids := map[string]bool{}
	if err := l.Scan(0, l.Size(), func(r trail.Record) error { ids[r.ID] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestTrailSurvivesSIGKILLUnderLoad is issue 5's crash test: the real
// binary in sync mode is killed while 8 clients send evaluations; every
// decision a client got an answer for is in the trail, which verifies, and
// after a restart and a graceful stop the whole trail is anchored.
func TestTrailSurvivesSIGKILLUnderLoad(t *testing.T) {
	bin := buildPDP(t)
	dir := filepath.Join(t.TempDir(), "trail")
	env := append(os.Environ(),
		"PDP_POLICY_DIR="+todoDir,
		"PDP_POLICY_RELOAD_INTERVAL=0",
		"PDP_TRAIL_MODE=sync",
		"PDP_TRAIL_DIR="+dir,
		"PDP_TRAIL_CHECKPOINT_INTERVAL=50ms",
		"PDP_LOG_FORMAT=json",
	)
	start := func() (*exec.Cmd, string) { return startBinary(t, bin, env, "serve", "--addr", "127.0.0.1:0") }

	cmd, url := start()
	const total, clients, killAfter = 300, 8, 150
	var (
		next     atomic.Int64
		mu       sync.Mutex
		answered []string
		killOnce sync.Once
		wg       sync.WaitGroup
	)
	kill := func() {
		killOnce.Do(func() {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Error(err)
			}
		})
	}
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				a, err := ask(url, int(i))
				if err != nil {
					continue // the server is gone: no answer, nothing owed
				}
				if !a.Decision || a.Context.DecisionID == "" {
					t.Errorf("answer %d: %+v", i, a)
				}
				mu.Lock()
				answered = append(answered, a.Context.DecisionID)
				n := len(answered)
				mu.Unlock()
				if n == killAfter {
					kill()
				}
			}
		})
	}
	wg.Wait()
	kill()
	_ = cmd.Wait()
	if len(answered) < killAfter || len(answered) >= total {
		t.Fatalf("%d answers: the kill did not land mid-load", len(answered))
	}

	if code, out, errOut := logRun("verify", "--dir", dir); code != exitOK || !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("verify after SIGKILL: %d\n%s%s", code, out, errOut)
	}
	ids := trailIDs(t, dir)
	for _, id := range answered {
		if !ids[id] {
			t.Errorf("decision %s was answered but is not in the trail", id)
		}
	}
	t.Logf("%d answered before the kill, %d records in the trail", len(answered), len(ids))

	// Restart on the same trail, decide once more, stop gracefully: the
	// final checkpoint anchors every record.
	cmd, url = start()
	a, err := ask(url, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	code, out, errOut := logRun("verify", "--dir", dir)
	// The restart recorded the policy version's activation, then the decision.
	want := fmt.Sprintf("%d records anchored", len(ids)+2)
	if code != exitOK || !strings.Contains(out, want) {
		t.Fatalf("verify after restart: %d\n%s%s(want %q)", code, out, errOut, want)
	}
	if !trailIDs(t, dir)[a.Context.DecisionID] {
		t.Fatal("the decision after the restart is not in the trail")
	}
}

// serveTrail runs `pdp serve` in this process with the trail in mode and
// dir, and returns its URL and a function that stops it gracefully.
func serveTrail(t *testing.T, mode, dir string) (string, func()) {
	t.Helper()
	return serveTrailBundle(t, mode, dir, todoDir)
}

// serveTrailBundle is serveTrail over the bundle in folder bundle.
func serveTrailBundle(t *testing.T, mode, dir, bundle string) (string, func()) {
	t.Helper()
	t.Setenv("PDP_TRAIL_MODE", mode)
	t.Setenv("PDP_TRAIL_DIR", dir)
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogWatcher()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--reload-interval", "0", "--dir", bundle}, strings.NewReader(""), io.Discard, logs)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("serve exited with %d; log:\n%s", code, logs)
		}
	}
	t.Cleanup(stop)
	select {
	case addr := <-logs.listening:
		return "http://" + addr, stop
	case code := <-done:
		stopped = true
		t.Fatalf("serve exited with %d before listening; log:\n%s", code, logs)
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not listen within 20s; log:\n%s", logs)
	}
	return "", nil
}

// TestLogProveChecksWithThePublicKey serves the verifier key, proves a
// decision with `pdp log prove`, checks the proof with trail.CheckProof and
// the served key alone, and sees `pdp log verify` catch a flipped byte.
func TestLogProveChecksWithThePublicKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trail")
	url, stop := serveTrail(t, pdpserver.TrailSync, dir)
	res, err := http.Get(url + "/v1/trail/key")
	if err != nil {
		t.Fatal(err)
	}
	keyData, _ := io.ReadAll(res.Body)
	res.Body.Close()
	vkey := strings.TrimSpace(string(keyData))
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(vkey, "pdp/trail+") {
		t.Fatalf("GET /v1/trail/key: %d %q", res.StatusCode, keyData)
	}
	var ids []string
	for i := range 5 {
		a, err := ask(url, i)
		if err != nil || !a.Decision {
			t.Fatalf("ask: %v %+v", err, a)
		}
		ids = append(ids, a.Context.DecisionID)
	}
	// The trail is locked while the PDP runs.
	if code, _, errOut := logRun("checkpoint", "--dir", dir); code != exitFailure || !strings.Contains(errOut, "in use") {
		t.Fatalf("log checkpoint on a running PDP's trail: %d %s", code, errOut)
	}
	stop() // writes the final checkpoint

	code, cp, errOut := logRun("checkpoint", "--dir", dir)
	// Record 0 is the activation of the policy version, then the 5 decisions.
	if code != exitOK || !strings.HasPrefix(cp, "pdp/trail\n6\n") {
		t.Fatalf("log checkpoint: %d %q %s", code, cp, errOut)
	}
	p := proveByLog(t, vkey, "--dir", dir, ids[3])
	if p.Record.ID != ids[3] || p.Record.Seq != 4 || p.Checkpoint != cp {
		t.Fatalf("proof of %+v against %q", p.Record, p.Checkpoint)
	}
	p.Record.Body = []byte(strings.Replace(string(p.Record.Body), "true", "false", 1))
	if err := trail.CheckProof(vkey, []byte(p.Checkpoint), p.Record, p.Proof); err == nil {
		t.Fatal("a changed record still checks")
	}
	if code, _, errOut := logRun("prove", "--dir", dir, "no-such-decision"); code != exitFailure || !strings.Contains(errOut, "not in the trail") {
		t.Fatalf("prove of an unknown id: %d %s", code, errOut)
	}

	if code, out, errOut := logRun("verify", "--dir", dir, "--key", vkey); code != exitOK || !strings.Contains(out, "OK: 6 records") {
		t.Fatalf("verify: %d %s %s", code, out, errOut)
	}
	// Change one byte of record 1's body, keeping its frame intact.
	path := filepath.Join(dir, "records.log")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	lines[2] = strings.Replace(lines[2], ids[1], ids[0], 1)
	payload := strings.TrimSuffix(lines[2][18:], "\n")
	lines[2] = fmt.Sprintf("%08x %08x %s\n", len(payload), crc32c(payload), payload)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o640); err != nil {
		t.Fatal(err)
	}
	code, out, _ := logRun("verify", "--dir", dir, "--key", vkey)
	if code != exitFailure || !strings.Contains(out, "FAILED: changed at seq 2") {
		t.Fatalf("verify of a changed record: %d %s", code, out)
	}
}

func crc32c(s string) uint32 {
	return crc32.Checksum([]byte(s), crc32.MakeTable(crc32.Castagnoli))
}

// TestTrailThroughput measures evaluations/s over loopback from 32 clients
// with the trail off, async and sync (same bundle, same process). It runs
// only with PDP_TRAIL_BENCH=N (N evaluations per mode).
func TestTrailThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PDP_TRAIL_BENCH"))
	if n <= 0 {
		t.Skip("set PDP_TRAIL_BENCH=N to measure N evaluations per trail mode")
	}
	modes := []string{pdpserver.TrailOff, pdpserver.TrailAsync, pdpserver.TrailSync}
	if m := os.Getenv("PDP_TRAIL_BENCH_MODES"); m != "" {
		modes = strings.Split(m, ",")
	}
	for _, mode := range modes {
		url, stop := serveTrail(t, mode, filepath.Join(t.TempDir(), "trail"))
		for i := range 200 { // warm up connections and caches
			if _, err := ask(url, i); err != nil {
				t.Fatal(err)
			}
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		var ru0, ru1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		start := time.Now()
		for range 32 {
			wg.Go(func() {
				for i := next.Add(1); i <= int64(n); i = next.Add(1) {
					if a, err := ask(url, int(i)); err != nil || !a.Decision {
						t.Errorf("%v %+v", err, a)
						return
					}
				}
			})
		}
		wg.Wait()
		el := time.Since(start)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		t.Logf("%s: CPU %v in %v wall: %.0f%% of one core", mode, cpu.Round(time.Millisecond), el.Round(time.Millisecond), 100*cpu.Seconds()/el.Seconds())
		if res, err := http.Get(url + "/metrics"); err == nil {
			data, _ := io.ReadAll(res.Body)
			res.Body.Close()
			for _, line := range strings.Split(string(data), "\n") {
				if strings.HasPrefix(line, "pdp_trail_") || strings.HasPrefix(line, "go_gc_duration_seconds_count") {
					t.Logf("%s %s", mode, line)
				}
			}
		}
		stop()
		t.Logf("trail %-5s: %d evaluations in %v: %.0f/s", mode, n, el.Round(time.Millisecond), float64(n)/el.Seconds())
	}
}

// proveByLog runs `pdp log prove ARGS…` and checks the proof it prints
// against the trail's public key: the proof, parsed.
func proveByLog(t *testing.T, vkey string, args ...string) proofOutput {
	t.Helper()
	code, out, errOut := logRun(append([]string{"prove"}, args...)...)
	if code != exitOK {
		t.Fatalf("log prove: %d %s %s", code, out, errOut)
	}
	var p proofOutput
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("prove output %s: %v", out, err)
	}
	if err := trail.CheckProof(vkey, []byte(p.Checkpoint), p.Record, p.Proof); err != nil {
		t.Fatalf("the proof does not check: %v\n%s", err, out)
	}
	return p
}
