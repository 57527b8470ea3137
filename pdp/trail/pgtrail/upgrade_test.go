package pgtrail

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// oldTree is the stored hashes of the records mkRec(0..n-1), as
// writeOldLayout stores them in trail_hashes.
func oldTree(t *testing.T, n int) []tlog.Hash {
	t.Helper()
	var tree []tlog.Hash
	for i := range n {
		_, leaf := canonicalAt(i, uint64(i))
		hs, err := tlog.StoredHashesForRecordHash(int64(i), tlog.Hash(leaf), memHashes(tree))
		if err != nil {
			t.Fatal(err)
		}
		tree = append(tree, hs...)
	}
	return tree
}

// TestPostgresOpenWaitsBehindOldAppend: a PDP that starts (and migrates)
// while a replica of the earlier version is in the middle of an append
// (head row locked, records being written) waits for that append instead
// of deadlocking with it; both succeed and the migrated trail verifies.
func TestPostgresOpenWaitsBehindOldAppend(t *testing.T) {
	const n = 12
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	writeOldLayout(t, db, signer, n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old, err := pgx.Connect(ctx, db.url)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close(context.Background())
	tx, err := old.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, db.sql(`SELECT size FROM {head} FOR UPDATE`)); err != nil {
		t.Fatal(err)
	}

	opened := make(chan error, 1)
	go func() {
		l, err := Open(ctx, db.url, Options{Schema: db.schema, Signer: signer})
		if err == nil {
			err = l.Close()
		}
		opened <- err
	}()
	waitForLockWait(t, ctx, db) // the opener reaches its DDL and waits behind the append

	// The rest of the older replica's append: its record, its stored
	// hashes, the head.
	body, leaf := canonicalAt(n, n)
	tree := oldTree(t, n+1)
	first := tlog.StoredHashIndex(0, n)
	steps := []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO {records} (seq, kind, id, time, body, leaf) VALUES ($1, 'decision', $2, $3, $4, $5)`,
			[]any{n, mkRec(n).ID, mkRec(n).Time, body, leaf}},
		{`INSERT INTO {hashes} (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, func() []any {
			var idx []int64
			var hs [][]byte
			for i := first; i < int64(len(tree)); i++ {
				idx, hs = append(idx, i), append(hs, tree[i][:])
			}
			return []any{idx, hs}
		}()},
		{`UPDATE {head} SET size = $1`, []any{n + 1}},
	}
	for _, s := range steps {
		if _, err := tx.Exec(ctx, db.sql(s.sql), s.args...); err != nil {
			t.Fatalf("the older replica's append: %v", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("the older replica's commit: %v", err)
	}
	if err := <-opened; err != nil {
		t.Fatalf("open beside an older replica's append: %v", err)
	}
	l := db.open(Options{Signer: signer})
	if rep := pgVerify(t, l, vkey); !rep.OK || rep.To != n+1 {
		t.Fatalf("verify after the migration: %v", rep)
	}
}

// TestPostgresNoMigrateOpenRunsNoDDL: a reader's Open runs no DDL on a
// trail that exists: it opens, verifies, reads and proves while another
// transaction holds a lock (EXCLUSIVE) that any CREATE INDEX or ALTER
// TABLE of the trail's tables would wait for, in either layout.
func TestPostgresNoMigrateOpenRunsNoDDL(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(pgDB, *testing.T, note.Signer) []byte
	}{
		{"old layout", func(db pgDB, t *testing.T, signer note.Signer) []byte {
			return writeOldLayout(t, db, signer, 9)
		}},
		{"current layout", func(db pgDB, t *testing.T, signer note.Signer) []byte {
			l := db.open(Options{Signer: signer})
			pgAppendN(t, l, 0, 9)
			cp, err := l.Checkpoint()
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			return cp
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := newPGDB(t)
			signer, vkey := newKeys(t)
			cp := tc.make(db, t, signer)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tx, err := db.c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(context.Background()) }()
			if _, err := tx.Exec(ctx, db.sql(`LOCK TABLE {head}, {records}, {hashes}, {checkpoints} IN EXCLUSIVE MODE`)); err != nil {
				t.Fatal(err)
			}
			octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
			defer ocancel()
			l, err := Open(octx, db.url, Options{Schema: db.schema, NoMigrate: true, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatalf("a reader's open while the tables are locked: %v", err)
			}
			defer l.Close()
			if rep, err := l.Verify(octx, vkey, 0, ^uint64(0)); err != nil {
				t.Fatalf("verify: %v", err)
			} else if !rep.OK || rep.To != 9 {
				t.Fatalf("verify: %v", rep)
			}
			if _, err := l.Get(4); err != nil {
				t.Fatalf("get: %v", err)
			}
			if _, err := l.Prove(4, cp); err != nil {
				t.Fatalf("prove: %v", err)
			}
		})
	}
}

// TestPostgresNoMigrateReaderSeesMigration: a reader opened on an
// old-layout trail keeps verifying and proving after a replica of this
// version migrated the tables under it.
func TestPostgresNoMigrateReaderSeesMigration(t *testing.T) {
	const n = 21
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	cp := writeOldLayout(t, db, signer, n)
	r := db.open(Options{NoMigrate: true})
	if rep := pgVerify(t, r, vkey); !rep.OK {
		t.Fatalf("before the migration: %v", rep)
	}
	w := db.open(Options{Signer: signer}) // migrates
	pgAppendN(t, w, n, 3)
	for _, l := range []*Log{r, w} {
		if rep := pgVerify(t, l, vkey); !rep.OK || rep.To != n+3 {
			t.Fatalf("after the migration: %v", rep)
		}
		checkProofs(t, l, vkey, cp, 0, 7, n-1)
	}
}

// TestPostgresMigratesRestoredTrail: a trail schema restored from a
// backup taken before the upgrade is in the old layout again, whatever
// was recorded elsewhere about an earlier migration: the next Open
// migrates it, appends work and it verifies, for a reader too.
func TestPostgresMigratesRestoredTrail(t *testing.T) {
	const n = 13
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	writeOldLayout(t, db, signer, n)
	l := db.open(Options{Signer: signer})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	db.exec(`DROP SCHEMA ` + db.schema + ` CASCADE`) // the restore: the old tables again
	writeOldLayout(t, db, signer, n)

	l = db.open(Options{Signer: signer})
	pgAppendN(t, l, n, 4)
	if rep := pgVerify(t, l, vkey); !rep.OK || rep.To != n+4 {
		t.Fatalf("verify after the restore: %v", rep)
	}
	if rep := pgVerify(t, db.open(Options{NoMigrate: true}), vkey); !rep.OK || rep.To != n+4 {
		t.Fatalf("a reader's verify after the restore: %v", rep)
	}
	if _, err := l.Append(context.Background(), mkRec(n+4)); err != nil {
		t.Fatal(err)
	}
}

// waitForLockWait returns once a session waits on a lock
// (pg_stat_activity) of a table in the test's schema (pg_locks: other
// tests share the database), or fails the test after 20s.
func waitForLockWait(t *testing.T, ctx context.Context, db pgDB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting int
		err := db.c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity a
			JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
			JOIN pg_class c ON c.oid = l.relation
			JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE a.wait_event_type = 'Lock' AND n.nspname = $1`, db.schema).Scan(&waiting)
		if err != nil {
			t.Fatalf("read pg_stat_activity: %v", err)
		}
		if waiting > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no session waits on a lock after 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
