package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// TestPostgresTrailCutUnderServingPDPOverHTTP: a PDP answers decisions
// on a PostgreSQL trail; then someone deletes the newest records (after
// the latest checkpoint) and sets the head's size, root size and root
// consistently to the shorter tree, which nothing in the tables can tell
// from a shorter trail. The serving PDP has seen the longer tree and
// answered with those records' positions: its next decision answers deny
// trail_unavailable (logged at Error, "records were cut") instead of
// numbering a new record over a deleted one, and its final checkpoint at
// shutdown does not sign the cut tree.
func TestPostgresTrailCutUnderServingPDPOverHTTP(t *testing.T) {
	url := testDatabase(t)
	key, _ := trailKeyFile(t)
	t.Setenv("PDP_TRAIL_STORE", pdpserver.TrailPostgres)
	t.Setenv("PDP_TRAIL_POSTGRES_URL", url)
	t.Setenv("PDP_TRAIL_SIGNING_KEY_FILE", key)
	t.Setenv("PDP_TRAIL_MODE", pdpserver.TrailSync)
	t.Setenv("PDP_TRAIL_DIR", filepath.Join(t.TempDir(), "a"))
	t.Setenv("PDP_TRAIL_CHECKPOINT_INTERVAL", "1h") // because the cut must lie after the latest checkpoint, which a 1 s tick may move past every record
	srv := startServer(t, "--dir", todoDir)
	for i := range 4 {
		if a, err := ask(srv.URL, i); err != nil || !a.Decision {
			t.Fatalf("ask %d: %v %+v", i, err, a)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n, cp, cps int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT size FROM trail_head), (SELECT coalesce(max(size), 0) FROM trail_checkpoints),
		(SELECT count(*) FROM trail_checkpoints)`).Scan(&n, &cp, &cps); err != nil {
		t.Fatal(err)
	}
	cut := max(cp, n-2)
	if cut >= n {
		t.Fatalf("no record after the latest checkpoint (%d of %d records) to cut", cp, n)
	}
	root := rootOfRows(ctx, t, conn, cut)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM trail_records WHERE seq >= $1`, []any{cut}},
		{`UPDATE trail_head SET size = $1, root_size = $1, root = $2`, []any{cut, root}},
	} {
		if _, err := conn.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}

	a, err := ask(srv.URL, 4)
	if err != nil || a.Decision || len(a.Context.Reasons) != 1 || a.Context.Reasons[0] != "trail_unavailable" {
		t.Fatalf("ask after the head was cut from %d to %d: %v %+v, want deny trail_unavailable", n, cut, err, a)
	}
	rec := srv.logs.find("ERROR", "decision trail write failed")
	if e, _ := rec["error"].(string); !strings.Contains(e, fmt.Sprintf("records were cut: the tree head says %d records, this replica has seen %d", cut, n)) {
		t.Fatalf("error log of the refused append: %v; log:\n%s", rec, srv.logs)
	}
	srv.stop(t) // the final checkpoint is refused too

	var size, after int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT size FROM trail_head), (SELECT count(*) FROM trail_checkpoints)`).Scan(&size, &after); err != nil {
		t.Fatal(err)
	}
	if size != cut || after != cps {
		t.Fatalf("after shutdown: head %d, %d checkpoints; want %d and %d (nothing written over the cut)", size, after, cut, cps)
	}
	rec = srv.logs.find("ERROR", "decision trail: close")
	if e, _ := rec["error"].(string); !strings.Contains(e, "checkpoint") || !strings.Contains(e, "records were cut") {
		t.Fatalf("error log of the refused final checkpoint: %v; log:\n%s", rec, srv.logs)
	}
}

// rootOfRows is the root of the tree of the first n records of the trail,
// from their leaf columns: what one who can write the tables sets the head
// to.
func rootOfRows(ctx context.Context, t *testing.T, conn *pgx.Conn, n int64) []byte {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT leaf FROM trail_records WHERE seq < $1 ORDER BY seq`, n)
	if err != nil {
		t.Fatal(err)
	}
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	var leaf []byte
	var seq int64
	if _, err := pgx.ForEachRow(rows, []any{&leaf}, func() error {
		hs, err := tlog.StoredHashesForRecordHash(seq, tlog.Hash(leaf), reader)
		stored, seq = append(stored, hs...), seq+1
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if seq != n {
		t.Fatalf("%d leaves read, want %d", seq, n)
	}
	root, err := tlog.TreeHash(n, reader)
	if err != nil {
		t.Fatal(err)
	}
	return root[:]
}
