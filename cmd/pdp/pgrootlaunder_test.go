package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// TestPostgresTrailRewriteNotLaunderedOverHTTP: a PDP answers decisions
// on a PostgreSQL trail; then someone rewrites its newest decision record
// with a leaf column to match and removes the checkpoint that covered it,
// so that only the head's root tells. A PDP started on that trail does not
// start (its policy activation, the first append, fails closed: "log
// damaged") instead of building a new root over the rewritten row, and
// pdp log verify still names the record changed after that start.
func TestPostgresTrailRewriteNotLaunderedOverHTTP(t *testing.T) {
	url, vkey := pgTrailDecided(t, 6)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var seq int64
	if err := conn.QueryRow(ctx, `SELECT max(seq) FROM trail_records WHERE kind = 'decision'`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		// A trailing space: still the record's JSON, another leaf hash.
		`UPDATE trail_records SET body = body || '\x20'::bytea, leaf = sha256('\x00'::bytea || body || '\x20'::bytea) WHERE seq = $1`,
		`DELETE FROM trail_checkpoints WHERE size > $1`,
	} {
		if _, err := conn.Exec(ctx, sql, seq); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}

	serveRefusesDamagedTrail(ctx, t, "a rewritten trail")

	code, out, errOut := logRun("verify", "--postgres-url", url, "--key", vkey)
	if code != exitFailure || !strings.Contains(out+errOut, "changed") {
		t.Fatalf("verify after the start: %d %s %s, want exit 1 naming the record changed", code, out, errOut)
	}
	t.Logf("verify: %s%s", out, errOut)
}

// TestPostgresTrailRootChangedWhileServingOverHTTP: someone changes the
// head's root under a serving PDP. Its next append finds the tree at the
// tip no longer hashes to the root and fails closed: the decision answers
// deny with trail_unavailable, and pdp log verify reports the trail.
func TestPostgresTrailRootChangedWhileServingOverHTTP(t *testing.T) {
	url := testDatabase(t)
	key, skey := trailKeyFile(t)
	vkey, err := pdpserver.VerifierKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PDP_TRAIL_STORE", pdpserver.TrailPostgres)
	t.Setenv("PDP_TRAIL_POSTGRES_URL", url)
	t.Setenv("PDP_TRAIL_SIGNING_KEY_FILE", key)

	pdpURL, stop := serveTrailBundle(t, pdpserver.TrailSync, filepath.Join(t.TempDir(), "a"), todoDir)
	defer stop()
	if a, err := ask(pdpURL, 0); err != nil || !a.Decision {
		t.Fatalf("ask before: %v %+v", err, a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE trail_head SET root = sha256(root)`); err != nil {
		t.Fatal(err)
	}
	a, err := ask(pdpURL, 1)
	if err != nil || a.Decision || len(a.Context.Reasons) != 1 || a.Context.Reasons[0] != "trail_unavailable" {
		t.Fatalf("ask after the root changed: %v %+v, want deny trail_unavailable", err, a)
	}
	stop()
	code, out, errOut := logRun("verify", "--postgres-url", url, "--key", vkey)
	if code != exitFailure {
		t.Fatalf("verify: %d %s %s, want exit 1", code, out, errOut)
	}
	t.Logf("verify: %s%s", out, errOut)
}
