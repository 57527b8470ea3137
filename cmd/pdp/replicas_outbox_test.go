package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/changefeed"
	"github.com/ciampdp/pdp/pdp/changefeed/pgfeed"
)

// cutPublishes makes PostgreSQL refuse every insert into the shared change
// feed by the replica of that pid (its id is host-pid-random): the failure
// injected between a change's commit and its publish.
func cutPublishes(t *testing.T, url string, pid int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`
CREATE FUNCTION cut_publishes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.origin LIKE '%%-%d-%%' THEN
		RAISE EXCEPTION 'publish cut by the test';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER cut_publishes BEFORE INSERT ON pdp_changes FOR EACH ROW EXECUTE FUNCTION cut_publishes();`, pid)); err != nil {
		t.Fatal(err)
	}
}

// TestReplicaKilledBetweenCommitAndPublish (issue 13, the outbox gap): two
// replicas on one PostgreSQL, a sidecar on B holding gina's allow (alice's
// financial_advice consent) in its cache. Alice withdraws that consent
// through A, whose publish to the shared feed fails after the withdrawal
// was committed; then A is killed. B sweeps A's change, recorded as coming
// before it was made, once A's lease ran out: B's sidecar denies within
// that bound, long before its cache TTL (30 s). (A consent change, not a
// revoke: a revoke also reaches B through SpiceDB's Watch of the
// projected relationship.)
func TestReplicaKilledBetweenCommitAndPublish(t *testing.T) {
	url := testDatabase(t)
	bin := buildPDP(t)
	skeyFile, _ := trailSigningKey(t)
	cmds, urls := startReplicas(t, bin, replicaEnv(url, skeyFile), 2)
	a, b := urls[0], urls[1]
	const key = "demo-key-advisor-portal"
	sc := startSidecar(t, b, key, filepath.Join(t.TempDir(), "spool"), nil)
	for range 3 {
		askSidecar(t, sc, key, ginaPortfolio)
	}
	if ans := askSidecar(t, sc, key, ginaPortfolio); !ans.Decision || ans.Context.CachedFrom == "" {
		t.Fatalf("before the revoke: allowed %v cached %q, want a cached allow", ans.Decision, ans.Context.CachedFrom)
	}

	cutPublishes(t, url, cmds[0].Process.Pid)
	code, data, err := postJSON(a, "/v1/consents/withdraw", key, `{"subject":`+userAlice+`,"purpose":"financial_advice"}`)
	if err != nil || code != http.StatusOK {
		t.Fatalf("withdrawal through A: %d %s %v", code, data, err)
	}
	// The publish was cut: B's sidecar still serves its cached allow.
	if ans := askSidecar(t, sc, key, ginaPortfolio); !ans.Decision {
		t.Fatal("B's sidecar denied at once: the publish was not cut (the trigger did not match A's id)")
	}
	if err := cmds[0].Process.Kill(); err != nil { // SIGKILL: A never publishes
		t.Fatal(err)
	}
	killed := time.Now()
	lease := pgfeed.ReplicaLease(changefeed.DefaultChangeLease)
	bound := lease + 3*time.Second
	for {
		ans := askSidecar(t, sc, key, ginaPortfolio)
		if !ans.Decision {
			t.Logf("B's sidecar denied %v after A was killed (A's replica lease %v; cache TTL 30s)", time.Since(killed).Round(time.Millisecond), lease)
			break
		}
		if time.Since(killed) > bound {
			t.Fatalf("B's sidecar still allows from its cache %v after A was killed: the withdrawal A committed but did not publish was not swept", time.Since(killed).Round(time.Millisecond))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, data, err := postJSON(b, "/access/v1/evaluation", key, ginaPortfolio); err != nil || code != http.StatusOK || !bytes.Contains(data, []byte(`"decision":false`)) {
		t.Errorf("B itself: %d %s %v, want deny", code, data, err)
	}
}
