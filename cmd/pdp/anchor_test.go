package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// TestDefaultCheckpointBoundsUnanchored is issue C13's regression test:
// on the shipped defaults a record is anchored by a signed checkpoint
// within about a second, so a trail whose PDP is killed -9 a little later
// passes `pdp log verify --fail-unanchored`. Before, a checkpoint a minute
// left up to a minute of records that nothing signed.
func TestDefaultCheckpointBoundsUnanchored(t *testing.T) {
	bin := sharedBinary(t)
	dir := filepath.Join(t.TempDir(), "trail")
	p := startProc(t, bin, listeningMsg, []string{"PDP_TRAIL_DIR=" + dir, "PDP_LOG_FORMAT=json", "PDP_POLICY_DIR=" + todoDir},
		"serve", "--addr", "127.0.0.1:0")
	for i := range 50 {
		if a, err := ask(p.URL, i); err != nil || !a.Decision {
			t.Fatalf("evaluation %d: %v %+v", i, err, a)
		}
	}
	time.Sleep(2500 * time.Millisecond) // two checkpoint intervals and a half
	if _, code := p.signal(t, syscall.SIGKILL, 10*time.Second); code == 0 {
		t.Fatal("exit code 0 after SIGKILL")
	}
	code, out, errOut := logRun("verify", "--dir", dir, "--fail-unanchored")
	if code != exitOK || !strings.Contains(out, ", 0 unanchored") {
		t.Errorf("verify --fail-unanchored: exit %d\n%s%s", code, out, errOut)
	}
}

// TestVerifyReportsUnanchored: `pdp log verify` counts the records after
// the latest checkpoint and warns; with --fail-unanchored it fails on them.
func TestVerifyReportsUnanchored(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	skey, vkey, err := note.GenerateKey(rand.Reader, "pdp/trail")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	appendN := func(opts trail.FileOptions, n int) {
		t.Helper()
		l, err := trail.OpenFile(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			rec := trail.Record{Kind: recorder.KindAdmin, ID: fmt.Sprintf("r-%d", i), Time: time.Now().UTC(), Body: []byte(`{}`)}
			if _, err := l.Append(context.Background(), rec); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil { // with a signer: a final checkpoint
			t.Fatal(err)
		}
	}
	appendN(trail.FileOptions{Origin: "pdp/trail", Signer: signer}, 2)
	appendN(trail.FileOptions{Origin: "pdp/trail"}, 3) // no signer: nothing anchors these

	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"reported", nil, exitOK, "2 records anchored by the latest, 3 unanchored", "warning: 3 records after the latest checkpoint are unanchored"},
		{"fail-unanchored", []string{"--fail-unanchored"}, exitFailure, "FAILED: 3 records after the latest checkpoint (size 2) are unanchored", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := logRun(append([]string{"verify", "--dir", dir, "--key", vkey}, tt.args...)...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errOut, tt.err) {
				t.Errorf("exit %d, want %d; stdout %q (want %q); stderr %q (want %q)", code, tt.code, out, tt.out, errOut, tt.err)
			}
		})
	}
}
