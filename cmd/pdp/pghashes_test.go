package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// TestPostgresTrailOldHashLayoutOverHTTP: a PDP answers decisions on a
// PostgreSQL trail, whose tables are then turned back by hand into the
// layout of PDPs before "one copy of each hash" (every stored hash in
// trail_hashes, no trail_records.up, no root in trail_head). The next
// PDP to start migrates them: it answers more decisions, trail_hashes ends
// empty, and pdp log verify, log prove (of a decision from before and one
// from after) and replay work over the whole trail. pdp log, run before
// that, reads the old layout without migrating it.
func TestPostgresTrailOldHashLayoutOverHTTP(t *testing.T) {
	url := testDatabase(t)
	key, skey := trailKeyFile(t)
	vkey, err := pdpserver.VerifierKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PDP_TRAIL_STORE", pdpserver.TrailPostgres)
	t.Setenv("PDP_TRAIL_POSTGRES_URL", url)
	t.Setenv("PDP_TRAIL_SIGNING_KEY_FILE", key)

	askN := func(pdpURL string, from, n int) []string {
		t.Helper()
		ids := make([]string, n)
		for i := range n {
			a, err := ask(pdpURL, from+i)
			if err != nil || !a.Decision {
				t.Fatalf("ask %d: %v %+v", from+i, err, a)
			}
			ids[i] = a.Context.DecisionID
		}
		return ids
	}
	pdpURL, stop := serveTrailBundle(t, pdpserver.TrailSync, filepath.Join(t.TempDir(), "a"), todoDir)
	before := askN(pdpURL, 0, 25)
	stop()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	toOldLayout(ctx, t, conn)

	// pdp log reads the old layout as it is: older replicas may still be
	// appending to it.
	code, out, errOut := logRun("verify", "--postgres-url", url, "--key", vkey)
	if code != exitOK || !strings.Contains(out, "OK: ") {
		t.Fatalf("verify of the old layout: %d %s %s", code, out, errOut)
	}
	proveByLog(t, vkey, "--postgres-url", url, before[7])
	var oldRows int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM trail_hashes`).Scan(&oldRows); err != nil || oldRows == 0 {
		t.Fatalf("pdp log migrated the trail: %d rows left in trail_hashes (%v)", oldRows, err)
	}

	pdpURL, stop = serveTrailBundle(t, pdpserver.TrailSync, filepath.Join(t.TempDir(), "b"), todoDir)
	after := askN(pdpURL, 100, 10)
	stop()

	var hashRows, retired int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM trail_hashes),
		(SELECT count(*) FROM pg_constraint WHERE conrelid = 'trail_hashes'::regclass AND conname = 'trail_hashes_retired_see_trail_records_up')`).
		Scan(&hashRows, &retired); err != nil {
		t.Fatal(err)
	}
	if hashRows != 0 || retired != 1 {
		t.Fatalf("after the migration: %d rows in trail_hashes, %d retiring constraints; want 0 and 1", hashRows, retired)
	}
	code, out, errOut = logRun("verify", "--postgres-url", url, "--key", vkey)
	if code != exitOK || !strings.Contains(out, "OK: ") {
		t.Fatalf("verify: %d %s %s", code, out, errOut)
	}
	proveByLog(t, vkey, "--postgres-url", url, before[3])
	proveByLog(t, vkey, "--postgres-url", url, after[len(after)-1])
	if code, out, errOut = pdpRun("replay", "--postgres-url", url, "--quiet"); code != exitOK || !strings.Contains(out, "35 reproduced") {
		t.Fatalf("replay: %d %s %s", code, out, errOut)
	}
}

// toOldLayout rewrites a trail's tables (public schema) as a PDP from
// before layout 1 left them: every stored hash a row of trail_hashes,
// computed from the leaf column, and no up column or head root.
func toOldLayout(ctx context.Context, t *testing.T, conn *pgx.Conn) {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT leaf FROM trail_records ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	leafs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	var tree []tlog.Hash
	read := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = tree[x]
		}
		return out, nil
	})
	for i, leaf := range leafs {
		hs, err := tlog.StoredHashesForRecordHash(int64(i), tlog.Hash(leaf), read)
		if err != nil {
			t.Fatal(err)
		}
		tree = append(tree, hs...)
	}
	idxs, hashes := make([]int64, len(tree)), make([][]byte, len(tree))
	for i, h := range tree {
		idxs[i], hashes[i] = int64(i), h[:]
	}
	for _, sql := range []string{
		`ALTER TABLE trail_hashes DROP CONSTRAINT trail_hashes_retired_see_trail_records_up`,
		`ALTER TABLE trail_records DROP COLUMN up`,
		`ALTER TABLE trail_head DROP COLUMN root, DROP COLUMN root_size`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO trail_hashes (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, idxs, hashes); err != nil {
		t.Fatal(err)
	}
}
