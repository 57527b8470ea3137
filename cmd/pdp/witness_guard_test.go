package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
	"github.com/ciampdp/pdp/pdp/trail"
)

// TestWitnessFileGuardsOverHTTP, through the running PDP on a file trail:
// a restart does not append again the checkpoint the witness file ends in
// (no note twice in a row); a
// trail.witness_file that names a file of someone else's (a small config)
// is left byte-identical while decisions go on, and the failure shows in
// pdp_trail_checkpoint_failing and at Error.
func TestWitnessFileGuardsOverHTTP(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trail")
	witness := filepath.Join(t.TempDir(), "pdp.witness")
	t.Setenv("PDP_TRAIL_WITNESS_FILE", witness)
	t.Setenv("PDP_TRAIL_CHECKPOINT_INTERVAL", "50ms")
	url, stop := serveTrail(t, pdpserver.TrailSync, dir)
	askN(t, url, 0, 3)
	stop()
	want, err := os.ReadFile(witness)
	if err != nil || len(want) == 0 {
		t.Fatalf("witness file after a run: %q %v", want, err)
	}
	_, stop = serveTrail(t, pdpserver.TrailSync, dir)
	stop()
	got, _ := os.ReadFile(witness)
	if !bytes.HasPrefix(got, want) {
		t.Fatalf("a restart changed the notes already there: %q", got)
	}
	cps, err := trail.ParseWitnessFile(got)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cps {
		if c.Err != nil || i > 0 && bytes.Equal(c.Signed, cps[i-1].Signed) {
			t.Fatalf("witness file after a restart (chunk %d: %v):\n%s", i+1, c.Err, got)
		}
	}

	bin := sharedBinary(t)
	foreign := filepath.Join(t.TempDir(), "pdp.yaml")
	config := []byte("listen: 127.0.0.1:8080\ntrail:\n  dir: /var/lib/pdp\n")
	if err := os.WriteFile(foreign, config, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, bin, listeningMsg, []string{"PDP_TRAIL_DIR=" + dir, "PDP_LOG_FORMAT=json", "PDP_POLICY_DIR=" + todoDir,
		"PDP_TRAIL_CHECKPOINT_INTERVAL=50ms", "PDP_TRAIL_WITNESS_FILE=" + foreign}, "serve", "--addr", "127.0.0.1:0")
	s := &server{URL: p.URL}
	askN(t, p.URL, 3, 3)
	eventually(t, "the refused file shows", func() bool { return s.metric(t, "pdp_trail_checkpoint_failing") == 1 })
	if logs := p.logs.String(); !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, "move the file away") {
		t.Fatalf("no Error saying to move the file away; log:\n%s", logs)
	}
	if _, code := p.signal(t, syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; log:\n%s", code, p.logs)
	}
	if got, _ := os.ReadFile(foreign); !bytes.Equal(got, config) {
		t.Fatalf("the foreign file was changed to %q", got)
	}
}
