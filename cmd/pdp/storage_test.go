package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// storageEnv points the Northbank example at stores and a decision trail
// in the given folders (set before startNorthbank, which keeps them).
func storageEnv(t *testing.T, data, trailDir string) {
	t.Helper()
	t.Setenv("PDP_DELEGATIONS_PATH", filepath.Join(data, "delegations.jsonl"))
	t.Setenv("PDP_CONSENT_PATH", filepath.Join(data, "consent.jsonl"))
	t.Setenv("PDP_TRAIL_MODE", pdpserver.TrailSync)
	t.Setenv("PDP_TRAIL_DIR", trailDir)
	for k, v := range map[string]string{
		"PDP_POLICY_DIR":          northbank,
		"PDP_RELATIONS_BOOTSTRAP": filepath.Join(northbank, "relationships.txt"),
		"PDP_DELEGATIONS_SEED":    filepath.Join(northbank, "delegations.json"),
		"PDP_CONSENT_SEED":        filepath.Join(northbank, "consents.json"),
		"PDP_LOG_FORMAT":          "json",
	} {
		t.Setenv(k, v)
	}
}

// frankAndGina asks whether frank may view acme's statements (erin's
// sub-delegate) and gina alice's portfolio (alice's financial_advice
// consent).
func frankAndGina(t *testing.T, s *server) (frank, gina nbDecision) {
	t.Helper()
	frank = s.nbEvaluate(t, "frank", "view_statements", "acc-acme", forAcme(""))
	gina = s.nbAsk(t, "advisor-portal", user("gina"), "view_portfolio", accAlice, `{"purpose":"financial_advice"}`)
	return frank, gina
}

// mountFull mounts a small tmpfs at dir (unmounted at cleanup, after the
// servers stopped) and returns a function that fills it up; the test is
// skipped where mounting is not allowed.
func mountFull(t *testing.T, dir string) (fill, free func()) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Skipf("SKIPPED: cannot mount a tmpfs to fill up (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	filler := filepath.Join(dir, "filler")
	fill = func() { // fills what is left, again after the trail cut a failed write back
		f, err := os.OpenFile(filler, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 64<<10)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill the trail's file system: %v", err)
				}
				break
			}
		}
		for n := 4096; n > 0; n /= 2 { // the last crumbs
			for {
				if _, err := f.Write(buf[:n]); err != nil {
					break
				}
			}
		}
	}
	free = func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}
	return fill, free
}

// TestAdminChangeNotAppliedWithoutItsRecord: with the decision trail's
// file system full, a suspend and a withdrawal are answered 503
// trail_unavailable and change nothing: the records read as before, and
// after a restart (space freed) frank and gina are still allowed.
func TestAdminChangeNotAppliedWithoutItsRecord(t *testing.T) {
	root := t.TempDir()
	trailDir := filepath.Join(root, "trail")
	fill, free := mountFull(t, trailDir)
	storageEnv(t, filepath.Join(root, "data"), trailDir)

	s := startNorthbank(t)
	if frank, gina := frankAndGina(t, s); !frank.Decision || !gina.Decision {
		t.Fatalf("before: frank %v %v, gina %v %v", frank.Decision, frank.Context.Reasons, gina.Decision, gina.Context.Reasons)
	}
	fill()
	// The trail's last pages still have room: decisions use it up until
	// their records fail (denied trail_unavailable).
	for i := 0; ; i++ {
		d := s.nbEvaluate(t, "bob", "view_statements", "acc-alice", forUser("alice", ""))
		if slices.Contains(d.Context.Reasons, "trail_unavailable") {
			t.Logf("the trail failed after %d more decisions", i)
			break
		}
		if i == 1000 {
			t.Fatal("the decision trail still takes records on a full file system")
		}
	}
	// A failed write is cut back (the trail recovers when space returns):
	// fill the room it freed before each change, and give each change a
	// reason longer than a page, so that its record cannot fit in the
	// slack of the trail file's last page (tmpfs allocates whole pages).
	long := strings.Repeat("a long reason ", 700)
	fill()
	code, body := s.do(t, http.MethodPost, "/v1/delegations/rep-acme-erin/suspend",
		`{"actor":{"type":"user","id":"registrar"},"reason":"`+long+`"}`, demoKey("backoffice")...)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "trail_unavailable") {
		t.Fatalf("suspend with the trail full: %d %s, want 503 trail_unavailable", code, body)
	}
	fill()
	code, body = s.do(t, http.MethodPost, "/v1/consents/withdraw", `{"subject":`+userAlice+`,"purpose":"financial_advice","reason":"`+long+`"}`, demoKey("advisor-portal")...)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "trail_unavailable") {
		t.Fatalf("withdraw with the trail full: %d %s, want 503 trail_unavailable", code, body)
	}
	code, body = s.do(t, http.MethodGet, "/v1/delegations/rep-acme-erin", "", demoKey("backoffice")...)
	if code != http.StatusOK || !strings.Contains(string(body), `"status":"active"`) {
		t.Fatalf("erin's record after the refused suspend: %d %s", code, body)
	}
	code, body = s.do(t, http.MethodGet, "/v1/consents/subjects/user:alice", "", demoKey("advisor-portal")...)
	if code != http.StatusOK || !strings.Contains(string(body), "financial_advice") || strings.Contains(string(body), "withdrawn") {
		t.Fatalf("alice's consent after the refused withdrawal: %d %s", code, body)
	}
	s.stop(t)

	free()
	s = startNorthbank(t)
	frank, gina := frankAndGina(t, s)
	if !frank.Decision || !gina.Decision {
		t.Fatalf("after a restart: frank %v %v, gina %v %v; want both allowed (nothing was changed)",
			frank.Decision, frank.Context.Reasons, gina.Decision, gina.Context.Reasons)
	}
}

// cutLastLineWith cuts the file in the middle of the last line holding
// marker (and drops everything after it), as a damaged disk or a bad
// restore would, and returns where that line starts and how much of it is
// left: what the store must cut when it opens the file.
func cutLastLineWith(t *testing.T, path, marker string) (offset, torn int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	start := -1
	for i := len(lines) - 1; i >= 0 && start < 0; i-- {
		if bytes.Contains(lines[i], []byte(marker)) {
			start = 0
			for _, l := range lines[:i] {
				start += len(l)
			}
			torn = len(lines[i]) / 2
		}
	}
	if start < 0 {
		t.Fatalf("%s has no line with %q", path, marker)
	}
	if err := os.Truncate(path, int64(start+torn)); err != nil {
		t.Fatal(err)
	}
	return start, torn
}

// TestTornStoreRefusesStartUntilRepaired: erin's delegation is revoked and
// alice withdraws financial_advice (both acknowledged, both in the trail);
// the two store files are then cut in the middle of those records. The
// PDP logs each cut (file, offset, bytes) and refuses to start, naming
// both changes; 'pdp repair' applies them from the trail; the PDP then
// starts and frank and gina are denied, as before the cut.
func TestTornStoreRefusesStartUntilRepaired(t *testing.T) {
	root := t.TempDir()
	data, trailDir := filepath.Join(root, "data"), filepath.Join(root, "trail")
	storageEnv(t, data, trailDir)
	revokeAndWithdraw(t)

	delPath, consPath := filepath.Join(data, "delegations.jsonl"), filepath.Join(data, "consent.jsonl")
	delOff, delCut := cutLastLineWith(t, delPath, `"id":"rep-acme-erin"`)
	consOff, consCut := cutLastLineWith(t, consPath, `"type":"withdrawn"`)

	logs := serveRefuses(t)
	for _, c := range []struct {
		path        string
		offset, cut int
	}{{delPath, delOff, delCut}, {consPath, consOff, consCut}} {
		if !cutLogged(logs, c.path, c.offset, c.cut) {
			t.Errorf("no warning of the cut of %s at %d (%d bytes):\n%s", c.path, c.offset, c.cut, logs)
		}
	}
	repairAndRecheck(t)
}

// TestRestoredPostgresStoresRefuseStartUntilRepaired: the same with the
// delegation records and the consent ledger on PostgreSQL, restored from a
// "backup" taken before the revocation and the withdrawal.
func TestRestoredPostgresStoresRefuseStartUntilRepaired(t *testing.T) {
	uri := testDatabase(t)
	root := t.TempDir()
	storageEnv(t, filepath.Join(root, "data"), filepath.Join(root, "trail"))
	t.Setenv("PDP_DELEGATIONS_ENGINE", "postgres")
	t.Setenv("PDP_DELEGATIONS_POSTGRES_URI", uri)
	t.Setenv("PDP_CONSENT_ENGINE", "postgres")
	t.Setenv("PDP_CONSENT_POSTGRES_URI", uri)
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		conn, err := pgx.Connect(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// The "backup": the delegation rows as they are after the seed.
	var backedUp bool
	revokeAndWithdrawAfter(t, func() {
		exec(`CREATE TABLE backup_delegations AS SELECT * FROM pdp_delegations`)
		backedUp = true
	})
	if !backedUp {
		t.Fatal("no backup taken")
	}
	exec(`UPDATE pdp_delegations d SET status = b.status, version = b.version, record = b.record
		FROM backup_delegations b WHERE d.id = b.id`)
	exec(`DELETE FROM pdp_consent_events WHERE subject = 'user:alice' AND event->>'type' = 'withdrawn'`)

	serveRefuses(t)
	repairAndRecheck(t)
}

// revokeAndWithdraw serves the example, revokes erin's delegation and
// withdraws alice's financial_advice, checks that frank and gina are
// denied, and stops.
func revokeAndWithdraw(t *testing.T) { revokeAndWithdrawAfter(t, func() {}) }

// revokeAndWithdrawAfter is revokeAndWithdraw, calling before once the
// PDP serves and before the changes.
func revokeAndWithdrawAfter(t *testing.T, before func()) {
	t.Helper()
	s := startNorthbank(t)
	before()
	code, body := s.do(t, http.MethodPost, "/v1/delegations/rep-acme-erin/revoke",
		`{"actor":{"type":"user","id":"registrar"},"reason":"test"}`, demoKey("backoffice")...)
	if code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, body)
	}
	code, body = s.do(t, http.MethodPost, "/v1/consents/withdraw", `{"subject":`+userAlice+`,"purpose":"financial_advice"}`, demoKey("advisor-portal")...)
	if code != http.StatusOK {
		t.Fatalf("withdraw: %d %s", code, body)
	}
	frank, gina := frankAndGina(t, s)
	if frank.Decision || gina.Decision {
		t.Fatalf("after the changes: frank %v, gina %v; want both denied", frank.Decision, gina.Decision)
	}
	s.stop(t)
}

// exampleConfig is the example's configuration flag.
func exampleConfig() []string { return []string{"--config", filepath.Join(northbank, "pdp.yaml")} }

// serveRefuses runs serve and wants it to refuse to start, naming erin's
// revocation and alice's withdrawal and telling to run pdp repair; it
// returns the log.
func serveRefuses(t *testing.T) *logWatcher {
	t.Helper()
	logs := newLogWatcher()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0", "--reload-interval", "0"}, exampleConfig()...),
			strings.NewReader(""), &bytes.Buffer{}, logs)
	}()
	select {
	case code := <-exited:
		if code != exitFailure {
			t.Fatalf("serve on the damaged stores exited %d, want %d (refuse to start); log:\n%s", code, exitFailure, logs)
		}
	case <-logs.listening:
		cancel()
		<-exited
		t.Fatalf("serve started on stores that lack acknowledged changes; log:\n%s", logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("serve neither started nor refused within 60s; log:\n%s", logs)
	}
	out := logs.String()
	for _, want := range []string{"delegation.revoke of delegation rep-acme-erin", "consent.withdraw: consent event", "pdp repair"} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not name %q:\n%s", want, out)
		}
	}
	return logs
}

// repairAndRecheck runs pdp repair, serves the example again and finds
// frank and gina denied as before the damage; pdp repair --check then
// finds nothing to repair.
func repairAndRecheck(t *testing.T) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append([]string{"repair"}, exampleConfig()...), strings.NewReader(""), &stdout, &stderr); code != exitOK {
		t.Fatalf("pdp repair: %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "applied: delegation rep-acme-erin") || !strings.Contains(stdout.String(), "applied: consent") {
		t.Fatalf("pdp repair says:\n%s", stdout.String())
	}

	s := startNorthbank(t)
	frank, gina := frankAndGina(t, s)
	if frank.Decision || !slices.Equal(frank.Context.Reasons, []string{"delegation_revoked"}) ||
		gina.Decision || !slices.Equal(gina.Context.Reasons, []string{"consent_withdrawn"}) {
		t.Fatalf("after the repair: frank %v %v, gina %v %v; want delegation_revoked and consent_withdrawn",
			frank.Decision, frank.Context.Reasons, gina.Decision, gina.Context.Reasons)
	}
	s.stop(t)

	stdout.Reset()
	if code := run(context.Background(), append([]string{"repair", "--check"}, exampleConfig()...), strings.NewReader(""), &stdout, &stderr); code != exitOK ||
		!strings.Contains(stdout.String(), "nothing to repair") {
		t.Fatalf("pdp repair --check after the repair: %d\n%s", code, stdout.String())
	}
}

// cutLogged: the log has a warning of a cut of path at offset, of cut bytes.
func cutLogged(l *logWatcher, path string, offset, cut int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if r["level"] == "WARN" && r["file"] == path && r["offset"] == float64(offset) && r["bytes"] == float64(cut) {
			return true
		}
	}
	return false
}
