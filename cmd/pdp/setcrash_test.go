package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/signals"
)

// TestSignalSETCutByACrashIsRepaired: a SET of two events pushed over
// HTTP is stored; a crash during its write (simulated: the ledger file
// cut in the middle of the SET's second line) leaves no part of it after
// the restart: serve refuses to start naming the whole SET (the cut
// logged), pdp repair stores it from the trail, and serve starts with
// both events in the subject's history.
func TestSignalSETCutByACrashIsRepaired(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	storageEnv(t, data, filepath.Join(root, "trail"))
	s := startNorthbank(t)
	const tx, jti = "https://risk.northbank.example/", "crash-two-bob"
	set, err := signals.Sign(loadDemoTransmitterKey(t), map[string]any{
		"iss": tx, "aud": "https://pdp.northbank.example/", "iat": time.Now().Unix(), "jti": jti,
		"sub_id": map[string]any{"format": "iss_sub", "iss": "https://idp.northbank.example/", "sub": "bob"},
		"events": map[string]any{
			signals.RISCPrefix + "account-disabled":      map[string]any{},
			signals.RISCPrefix + "credential-compromise": map[string]any{},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := s.pushRaw(t, set, "application/secevent+jwt"); code != http.StatusAccepted {
		t.Fatalf("the two-event SET: %d %s", code, body)
	}
	s.stop(t)

	path := filepath.Join(data, "signals.jsonl")
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first := bytes.Index(file, []byte(jti))
	next := bytes.IndexByte(file[max(first, 0):], '\n') + max(first, 0) + 1
	second := bytes.Index(file[next:], []byte(jti))
	if first < 0 || second < 0 {
		t.Fatalf("the ledger file holds no two events of %s:\n%s", jti, file)
	}
	if err := os.WriteFile(path, file[:next+second], 0o600); err != nil { // the crash, within the second line
		t.Fatal(err)
	}
	named := "signal.receive: signal " + jti + " from " + tx
	serveRefusesNaming(t, named, "incomplete last record", "pdp repair")
	if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(jti)) {
		t.Fatalf("the restart kept a part of the SET:\n%s", b)
	}
	code, out, errOut := pdpRun(append([]string{"repair"}, exampleConfig()...)...)
	if code != exitOK || !strings.Contains(out, "repaired: 1 changes applied") {
		t.Fatalf("pdp repair: %d\n%s%s", code, out, errOut)
	}

	s = startNorthbank(t) // fails the test if serve refuses to start
	defer s.stop(t)
	t.Setenv("PDP_API_KEY", "demo-key-backoffice")
	code, out, errOut = pdpRun("signals", "history", "user:bob", "--server", s.URL)
	if code != exitOK || !strings.Contains(out, "account-disabled") || !strings.Contains(out, "credential-compromise") {
		t.Fatalf("bob's history after the repair: %d\n%s%s", code, out, errOut)
	}
}
