package main

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// buildPDP builds the real binary into a temporary folder, for the tests
// that kill it.
func buildPDP(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIPPED in -short: builds and kills the real binary")
	}
	bin := filepath.Join(t.TempDir(), "pdp")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startBinary runs `bin args…` with env (JSON log on stderr), waits for its
// "listening" line and returns the process and its base URL. The process is
// killed at cleanup if still running.
func startBinary(t *testing.T, bin string, env []string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == listeningMsg {
				a, _ := rec["addr"].(string)
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		trackPDP(t, a)
		return cmd, "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatal("the binary did not start listening within 60s")
	}
	return nil, ""
}
