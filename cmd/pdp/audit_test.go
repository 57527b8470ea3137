package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/audit"
	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// pdpRun runs the pdp command line in this process.
func pdpRun(args ...string) (int, string, string) {
	var out, errOut strings.Builder
	code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// legalHold forbids reading one todo; the auditor tests change policies
// with it.
func legalHold(id string) string {
	return fmt.Sprintf(`@id("hold-%s")
@reason("legal_hold")
forbid (principal, action == Action::"can_read_todos", resource == Todo::%q);
`, id, id)
}

// TestAuditorWalkthrough plays issue 5's auditor: decisions under two
// policy versions (the PDP restarted in between on the same trail), replay
// reproduces every one under the version it names, what-if lists exactly
// the decisions a proposed change flips, explain and audit query find the
// deny, and verify finds a flipped byte, a deleted record and two swapped
// records.
func TestAuditorWalkthrough(t *testing.T) {
	bundle := copyBundle(t, todoDir)
	dir := filepath.Join(t.TempDir(), "trail")
	decide := func() []string {
		url, stop := serveTrailBundle(t, pdpserver.TrailSync, dir, bundle)
		defer stop()
		var ids []string
		for i := range 6 {
			a, err := ask(url, i)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, a.Context.DecisionID)
		}
		return ids
	}
	v1 := decide()
	if err := os.WriteFile(filepath.Join(bundle, "policies", "hold.cedar"), []byte(legalHold("t1")), 0o644); err != nil {
		t.Fatal(err)
	}
	v2 := decide()

	// Replay: every decision, under both versions, reproduced.
	code, out, errOut := pdpRun("replay", "--dir", dir, "--json", "--quiet")
	var rep audit.ReplayReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK {
		t.Fatalf("replay: %d %v\n%s\n%s", code, err, out, errOut)
	}
	if rep.Decisions != 12 || rep.Reproduced != 12 || len(rep.Versions) != 2 || rep.OtherRecords != 2 {
		t.Fatalf("replay: %+v, want 12 decisions under 2 versions reproduced, 2 policy activations", rep)
	}

	// What-if: lift the hold on t1, put one on t2.
	proposed := copyBundle(t, todoDir)
	if err := os.WriteFile(filepath.Join(proposed, "policies", "hold.cedar"), []byte(legalHold("t2")), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = pdpRun("replay", "--dir", dir, "--policies", proposed, "--json", "--quiet")
	var wi audit.WhatIfReport
	if err := json.Unmarshal([]byte(out), &wi); err != nil || code != exitOK {
		t.Fatalf("what-if: %d %v\n%s\n%s", code, err, out, errOut)
	}
	got := map[string]bool{}
	for _, f := range wi.Flips {
		got[f.DecisionID] = true
	}
	want := map[string]bool{v1[2]: true, v2[1]: true, v2[2]: true}
	if !maps.Equal(got, want) || wi.AllowToDeny != 2 || wi.DenyToAllow != 1 {
		t.Fatalf("what-if flips %v (%d allow→deny, %d deny→allow), want exactly %v",
			slices.Sorted(maps.Keys(got)), wi.AllowToDeny, wi.DenyToAllow, slices.Sorted(maps.Keys(want)))
	}
	if len(wi.Groups) != 2 {
		t.Errorf("groups %+v, want one for each hold", wi.Groups)
	}
	if code, out, _ := pdpRun("replay", "--dir", dir, "--policies", proposed, "--fail-on-flip", "--quiet"); code != exitFailure || !strings.Contains(out, "FLIP allow→deny (legal_hold)") {
		t.Errorf("what-if --fail-on-flip: %d\n%s", code, out)
	}

	// Explain and query the deny.
	code, out, errOut = pdpRun("explain", "--dir", dir, v2[1])
	for _, w := range []string{"DENIED", `"hold-t1" (forbid hold.cedar:`, "legal_hold", "reproduced"} {
		if code != exitOK || !strings.Contains(out, w) {
			t.Fatalf("explain: %d, want %q in\n%s%s", code, w, out, errOut)
		}
	}
	code, out, _ = pdpRun("audit", "query", "--dir", dir, "--result", "deny")
	if code != exitOK || !strings.Contains(out, v2[1]) || !strings.Contains(out, "1 matching of 14 records") {
		t.Fatalf("audit query: %d\n%s", code, out)
	}
	if code, _, errOut := pdpRun("audit", "query", "--dir", dir, "--subject", "morty"); code != exitUsage || !strings.Contains(errOut, "type:id") {
		t.Errorf("audit query with a malformed subject: %d %s", code, errOut)
	}

	// Tampering, each on its own copy of the trail.
	if code, out, _ := logRun("verify", "--dir", dir); code != exitOK {
		t.Fatalf("verify before tampering: %d %s", code, out)
	}
	for _, tc := range []struct {
		name   string
		tamper func(lines []string) []string
		want   string
	}{
		{"flip a byte", func(l []string) []string {
			l[3] = reframe(strings.Replace(frameBody(l[3]), `"decision":true`, `"decision":false`, 1))
			return l
		}, "FAILED: changed at seq 3"},
		{"delete a record", func(l []string) []string { return slices.Delete(l, 4, 5) }, "FAILED: dropped at seq 4"},
		{"swap two records", func(l []string) []string { l[5], l[6] = l[6], l[5]; return l }, "FAILED: reordered at seq 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := filepath.Join(t.TempDir(), "trail")
			if err := os.CopyFS(cp, os.DirFS(dir)); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(cp, "records.log")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitAfter(string(data), "\n")
			if err := os.WriteFile(path, []byte(strings.Join(tc.tamper(lines), "")), 0o640); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := logRun("verify", "--dir", cp)
			if code != exitFailure || !strings.Contains(out, tc.want) {
				t.Fatalf("verify: %d, want %q:\n%s%s", code, tc.want, out, errOut)
			}
		})
	}
}

// frameBody is the payload of one records.log line; reframe makes a line
// with a valid checksum around a payload, as a careful forger would.
func frameBody(line string) string { return strings.TrimSuffix(line[18:], "\n") }

func reframe(payload string) string {
	return fmt.Sprintf("%08x %08x %s\n", len(payload), crc32c(payload), payload)
}

// TestTrailRedactionAndRetention configures both through the environment:
// request subjects are encrypted to an auditor, decisions are kept for a
// moment only. The trail holds no subject in clear in the requests,
// replays in full before retention, and verifies after it, with the
// retention run itself on record.
func TestTrailRedactionAndRetention(t *testing.T) {
	code, identity, errOut := pdpRun("audit", "keygen")
	if code != exitOK || !strings.HasPrefix(identity, "AGE-SECRET-KEY-1") {
		t.Fatalf("audit keygen: %d %s", code, errOut)
	}
	recipient := strings.TrimPrefix(strings.Split(errOut, "\n")[1], "# ")
	if !strings.HasPrefix(recipient, "age1") {
		t.Fatalf("keygen printed no recipient: %q", errOut)
	}
	dir := filepath.Join(t.TempDir(), "trail")
	t.Setenv("PDP_TRAIL_REDACT", "request.subject.id=encrypt,request.context=hash")
	t.Setenv("PDP_TRAIL_AUDITOR_RECIPIENTS", recipient)
	url, stop := serveTrailBundle(t, pdpserver.TrailSync, dir, todoDir)
	for i := range 3 {
		if _, err := ask(url, i); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	data, err := os.ReadFile(filepath.Join(dir, "records.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), `"subject":{"type":"user","id":{"$redacted":"age"`); n != 3 {
		t.Fatalf("%d requests with an encrypted subject id, want 3", n)
	}
	if code, out, errOut := pdpRun("replay", "--dir", dir, "--quiet"); code != exitOK || !strings.Contains(out, "3 reproduced") {
		t.Fatalf("replay of redacted records: %d %s %s", code, out, errOut)
	}
	idFile := filepath.Join(t.TempDir(), "auditor.key")
	if err := os.WriteFile(idFile, []byte(identity), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := pdpRun("audit", "query", "--dir", dir, "--json")
	if code != exitOK || strings.Contains(out, morty) {
		t.Fatalf("query without the identity shows the subject: %d %s", code, out)
	}

	t.Setenv("PDP_TRAIL_RETENTION", "decision=1ms")
	t.Setenv("PDP_TRAIL_RETENTION_INTERVAL", "20ms")
	_, stop = serveTrailBundle(t, pdpserver.TrailSync, dir, todoDir)
	time.Sleep(300 * time.Millisecond)
	stop()
	code, out, errOut = logRun("verify", "--dir", dir)
	if code != exitOK || !strings.Contains(out, "3 pruned") {
		t.Fatalf("verify after retention: %d %s %s", code, out, errOut)
	}
	code, out, _ = pdpRun("replay", "--dir", dir, "--quiet")
	if code != exitOK || !strings.Contains(out, "0 decisions replayed") {
		t.Fatalf("replay after retention: %d %s", code, out)
	}
	if !strings.Contains(trailText(t, dir), `"action":"trail.retention"`) {
		t.Error("the retention run is not on record")
	}
}

func trailText(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "records.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestTrailOnPostgresSharedByTwoReplicas runs two PDPs on one PostgreSQL
// trail (one chain, one shared signing key): both record, the chain
// verifies, and every decision replays under the version archived in the
// same database.
func TestTrailOnPostgresSharedByTwoReplicas(t *testing.T) {
	url := testDatabase(t)
	key, skey := trailKeyFile(t)
	t.Setenv("PDP_TRAIL_STORE", pdpserver.TrailPostgres)
	t.Setenv("PDP_TRAIL_POSTGRES_URL", url)
	t.Setenv("PDP_TRAIL_SIGNING_KEY_FILE", key)
	url1, stop1 := serveTrailBundle(t, pdpserver.TrailSync, filepath.Join(t.TempDir(), "a"), todoDir)
	url2, stop2 := serveTrailBundle(t, pdpserver.TrailSync, filepath.Join(t.TempDir(), "b"), todoDir)
	var ids []string
	for i := range 10 {
		u := url1
		if i%2 == 1 {
			u = url2
		}
		a, err := ask(u, i)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.Context.DecisionID)
	}
	stop1()
	stop2()
	vkey, err := pdpserver.VerifierKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := logRun("verify", "--postgres-url", url, "--key", vkey)
	if code != exitOK || !strings.Contains(out, "OK: 12 records") { // 10 decisions, 2 policy activations
		t.Fatalf("verify: %d %s %s", code, out, errOut)
	}
	code, out, errOut = pdpRun("replay", "--postgres-url", url, "--quiet")
	if code != exitOK || !strings.Contains(out, "10 reproduced") {
		t.Fatalf("replay: %d %s %s", code, out, errOut)
	}
	code, out, _ = pdpRun("explain", "--postgres-url", url, ids[3])
	if code != exitOK || !strings.Contains(out, "ALLOWED") {
		t.Fatalf("explain: %d %s", code, out)
	}
}
