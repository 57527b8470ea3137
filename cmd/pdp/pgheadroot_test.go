package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// TestPostgresTrailCutHeadOverHTTP: a PDP answers decisions on a
// PostgreSQL trail; then someone deletes its newest record, cuts the head
// row's size and root size to match (the constraint on trail_head wants
// both), and removes the checkpoint that covered it. pdp log verify names
// the records changed (the head keeps the root of the tree it had), and a
// PDP started on the cut trail does not start: its first append fails
// closed instead of writing over the gap.
func TestPostgresTrailCutHeadOverHTTP(t *testing.T) {
	url, vkey := pgTrailDecided(t, 11)
	code, out, errOut := logRun("verify", "--postgres-url", url, "--key", vkey)
	if code != exitOK || !strings.Contains(out, "OK: ") {
		t.Fatalf("verify before: %d %s %s", code, out, errOut)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT size FROM trail_head`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`DELETE FROM trail_records WHERE seq = $1 - 1`,
		`UPDATE trail_head SET size = $1 - 1, root_size = $1 - 1`,
		`DELETE FROM trail_checkpoints WHERE size >= $1`,
	} {
		if _, err := conn.Exec(ctx, sql, n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	code, out, errOut = logRun("verify", "--postgres-url", url, "--key", vkey)
	if code != exitFailure || !strings.Contains(out+errOut, "changed") {
		t.Fatalf("verify of a cut trail: %d %s %s, want exit 1 naming the records changed", code, out, errOut)
	}
	t.Logf("verify: %s%s", out, errOut)

	// A PDP started on the cut trail records its policy activation first:
	// that append fails closed, and so does the start.
	serveRefusesDamagedTrail(ctx, t, "a cut trail")
}

// pgTrailDecided answers n decisions of a PDP on a PostgreSQL trail
// (sync, the Todo example; the trail's variables stay set for the test)
// and stops it; it returns the database URL and the verifier key.
func pgTrailDecided(t *testing.T, n int) (url, vkey string) {
	t.Helper()
	url = testDatabase(t)
	key, skey := trailKeyFile(t)
	vkey, err := pdpserver.VerifierKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PDP_TRAIL_STORE", pdpserver.TrailPostgres)
	t.Setenv("PDP_TRAIL_POSTGRES_URL", url)
	t.Setenv("PDP_TRAIL_SIGNING_KEY_FILE", key)
	pdpURL, stop := serveTrailBundle(t, pdpserver.TrailSync, filepath.Join(t.TempDir(), "a"), todoDir)
	for i := range n {
		if a, err := ask(pdpURL, i); err != nil || !a.Decision {
			t.Fatalf("ask %d: %v %+v", i, err, a)
		}
	}
	stop()
	return url, vkey
}

// serveRefusesDamagedTrail starts a PDP on the test's PostgreSQL trail
// (what describes the damage): it records its policy activation first,
// and that append fails closed, and so does the start.
func serveRefusesDamagedTrail(ctx context.Context, t *testing.T, what string) {
	t.Helper()
	t.Setenv("PDP_TRAIL_MODE", pdpserver.TrailSync)
	t.Setenv("PDP_TRAIL_DIR", filepath.Join(t.TempDir(), "b"))
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	var logs strings.Builder
	code := run(sctx, []string{"serve", "--addr", "127.0.0.1:0", "--reload-interval", "0", "--dir", todoDir}, strings.NewReader(""), io.Discard, &logs)
	if code != exitFailure || !strings.Contains(logs.String(), "log damaged") {
		t.Fatalf("serve on %s: exit %d, log:\n%s", what, code, logs.String())
	}
}
