package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSidecarSpoolLocked: a second `pdp sidecar` on the spool directory of
// a running one is refused with a clear error (two processes never append
// to one spool), and the running sidecar keeps answering over HTTP.
func TestSidecarSpoolLocked(t *testing.T) {
	dir := t.TempDir()
	central := northbankWithTrail(t, dir, "127.0.0.1:0")
	spool := filepath.Join(dir, "spool")
	sc := startSidecar(t, central.URL, "demo-key-mobile-banking", spool, nil)
	ask := func() {
		t.Helper()
		code, data, err := postJSON(sc, "/access/v1/evaluation", "demo-key-mobile-banking", bobPays)
		var a sidecarAnswer
		if err != nil || code != http.StatusOK || json.Unmarshal(data, &a) != nil || !a.Decision {
			t.Fatalf("evaluation through the sidecar: %d %s %v", code, data, err)
		}
	}
	ask()

	// The same environment (PDP_SIDECAR_SPOOL_DIR) as the first one.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logs := newLogWatcher()
	logs.msg = sidecarListeningMsg
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"sidecar", "--listen", "127.0.0.1:0", "--central-url", central.URL}, strings.NewReader(""), io.Discard, logs)
	}()
	select {
	case addr := <-logs.listening:
		cancel()
		<-done
		t.Fatalf("a second sidecar on spool %s started (at %s); log:\n%s", spool, addr, logs)
	case code := <-done:
		if code != exitFailure {
			t.Errorf("second sidecar exited with %d, want %d", code, exitFailure)
		}
		if !strings.Contains(logs.String(), "in use by another process") {
			t.Errorf("second sidecar's log does not say the spool is in use:\n%s", logs)
		}
	case <-ctx.Done():
		t.Fatalf("second sidecar neither started nor failed; log:\n%s", logs)
	}
	ask()
}

// TestTrailLockedWhileServing: `pdp log verify` on the trail of a running
// PDP is refused (opening would repair the tail under the writer); once the
// PDP stops it verifies.
func TestTrailLockedWhileServing(t *testing.T) {
	dir := t.TempDir()
	central := northbankWithTrail(t, dir, "127.0.0.1:0")
	central.evaluate(t, bobPays, demoKey("mobile-banking")...)
	trailDir := filepath.Join(dir, "trail")
	code, out, errOut := logRun("verify", "--dir", trailDir)
	if code == exitOK || !strings.Contains(errOut, "in use by another process") {
		t.Fatalf("log verify on a running PDP's trail: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	central.stop(t)
	if code, out, errOut := logRun("verify", "--dir", trailDir); code != exitOK {
		t.Fatalf("log verify after stop: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}
