package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/signals"
	"github.com/ciampdp/pdp/pdp/trail"
)

// storedSignal is the signal ledger file's event of jti, as a JSON object.
func storedSignal(t *testing.T, path, jti string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["jti"] == jti {
			return e
		}
	}
	t.Fatalf("%s holds no event of %s", path, jti)
	return nil
}

// recordSignal writes a signal.receive record into the stopped PDP's
// trail, as a replica would have: the SET's transmitter, jti and events.
func recordSignal(t *testing.T, trailDir, transmitter, jti string, events ...map[string]any) {
	t.Helper()
	l, err := trail.OpenFile(trailDir, trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	rec, err := recorder.NewRecorder(nil, l, recorder.RecorderOptions{Instance: "replica-b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.RecordAdmin(context.Background(), "signal.receive", transmitter, jti,
		map[string]any{"transmitter": transmitter, "jti": jti, "events": events}); err != nil {
		t.Fatal(err)
	}
}

// copyOf is event e with its fields replaced by set.
func copyOf(e map[string]any, set map[string]any) map[string]any {
	c := make(map[string]any, len(e))
	for k, v := range e {
		if k != "position" {
			c[k] = v
		}
	}
	for k, v := range set {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// TestSignalCopiesAndInvalidRecordsAtStart: a SET pushed through the
// running PDP is stored; another replica's copy of the same jti with one
// more event, recorded in the trail without a not_applied record (the
// shared store refused it), does not stop the start. A trail record of a
// SET whose event does not validate (no subject) stops it, pdp repair
// --check names it, and pdp repair refuses to store it.
func TestSignalCopiesAndInvalidRecordsAtStart(t *testing.T) {
	root := t.TempDir()
	data, trailDir := filepath.Join(root, "data"), filepath.Join(root, "trail")
	storageEnv(t, data, trailDir)
	s := startNorthbank(t)
	s.push(t, "credential-compromise", "bob", "--jti", "rs-copy-bob")
	s.stop(t)

	ev := storedSignal(t, filepath.Join(data, "signals.jsonl"), "rs-copy-bob")
	tx := ev["transmitter"].(string)
	recordSignal(t, trailDir, tx, "rs-copy-bob", copyOf(ev, nil), copyOf(ev, map[string]any{"type": signals.RISCPrefix + "account-disabled"}))
	s = startNorthbank(t) // fails the test if serve refuses to start
	s.stop(t)

	recordSignal(t, trailDir, tx, "rs-bad", copyOf(ev, map[string]any{"jti": "rs-bad", "subject": nil}))
	named := "signal.receive: signal rs-bad from " + tx
	serveRefusesNaming(t, named)
	code, out, errOut := pdpRun(append([]string{"repair", "--check"}, exampleConfig()...)...)
	if code != exitFailure || !strings.Contains(out, "1 acknowledged changes are missing") || !strings.Contains(out, named) {
		t.Fatalf("pdp repair --check: %d, want %d naming %q:\n%s%s", code, exitFailure, named, out, errOut)
	}
	code, out, errOut = pdpRun(append([]string{"repair"}, exampleConfig()...)...)
	if code == exitOK || !strings.Contains(out+errOut, "cannot be stored") || !strings.Contains(out+errOut, "names no subject") {
		t.Fatalf("pdp repair of an invalid SET: %d, want a failure saying it cannot be stored:\n%s%s", code, out, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "signals.jsonl")); strings.Contains(string(b), "rs-bad") {
		t.Fatal("pdp repair stored the invalid SET")
	}
}
