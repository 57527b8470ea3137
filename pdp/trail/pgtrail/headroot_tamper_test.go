package pgtrail

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ciampdp/pdp/pdp/trail"
)

// The head's root against tampering followed by the normal life of the
// trail: a replica of this version starts, appends and checkpoints. Each
// of these must refuse a tree that does not hash to the root (not re-base
// the root over it), and Verify must still name the change afterwards.

// rootTrail writes 10 records with a signed checkpoint of them, then 3
// more by a replica without a signing key: records 10..12 are after the
// latest checkpoint, covered only by the head's root.
func rootTrail(t *testing.T) (pgDB, note.Signer, string) {
	t.Helper()
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	l := db.open(Options{Signer: signer})
	pgAppendN(t, l, 0, 10)
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = db.open(Options{})
	pgAppendN(t, l, 10, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return db, signer, vkey
}

// forgedTree is the stored hashes, record by record (leaf first, as the
// leaf and up columns hold them), and the root of the records
// mkRec(0..n-1) with record seq replaced by mkRec(99) at seq.
func forgedTree(t *testing.T, n, seq int) ([][]tlog.Hash, tlog.Hash) {
	t.Helper()
	var tree []tlog.Hash
	var rows [][]tlog.Hash
	for i := range n {
		_, leaf := canonicalAt(i, uint64(i))
		if i == seq {
			_, leaf = canonicalAt(99, uint64(i))
		}
		hs, err := tlog.StoredHashesForRecordHash(int64(i), tlog.Hash(leaf), memHashes(tree))
		if err != nil {
			t.Fatal(err)
		}
		tree, rows = append(tree, hs...), append(rows, hs)
	}
	root, err := tlog.TreeHash(int64(n), memHashes(tree))
	if err != nil {
		t.Fatal(err)
	}
	return rows, root
}

// rewriteRecord replaces record seq by mkRec(99) with its leaf column, as
// one who can write the rows would.
func rewriteRecord(db pgDB, seq int) {
	body, leaf := canonicalAt(99, uint64(seq))
	db.exec(`UPDATE {records} SET body = $2, leaf = $3, id = 'd-0099', time = $4 WHERE seq = $1`, seq, body, leaf, mkRec(99).Time)
}

// forge rewrites record seq and every stored hash and the root to match:
// a consistent tree of n records, which only the signed checkpoints can
// tell from the one written.
func forge(t *testing.T, db pgDB, n, seq int) {
	t.Helper()
	rows, root := forgedTree(t, n, seq)
	rewriteRecord(db, seq)
	for i, hs := range rows {
		db.exec(`UPDATE {records} SET up = $2 WHERE seq = $1`, i, packUp(hs))
	}
	db.exec(`UPDATE {head} SET root = $1`, root[:])
}

const dropRooted = `ALTER TABLE {head} DROP CONSTRAINT ` + rootedConstraint

// TestPostgresRootRefusesLaundering: after the rows (and what of the head
// the constraint lets through) are changed, a replica that starts,
// appends and checkpoints fails closed with ErrDamaged instead of
// re-basing the root or signing the changed tree, and Verify run after all
// of that names the change. Tampering that needs the constraint dropped is
// refused at start when the root kept disagrees with the rows.
func TestPostgresRootRefusesLaundering(t *testing.T) {
	tests := []struct {
		name     string
		tamper   func(t *testing.T, db pgDB)
		openFail bool // the start itself refuses (the upgrade step)
		// appendOK: the append and checkpoint succeed, on the tree the
		// root is of (the hashes they read were left alone): nothing is
		// laundered, Verify still names the change.
		appendOK bool
		// cpRefused: with appendOK, the checkpoint still refuses (the tree
		// does not extend the latest checkpoint).
		cpRefused bool
		problem   trail.Problem
		seq       uint64
	}{
		{
			name:    "newest record rewritten with its leaf",
			tamper:  func(_ *testing.T, db pgDB) { rewriteRecord(db, 12) },
			problem: trail.Changed, seq: 10,
		},
		{
			// Record 11's up column keeps the hash of [8,12), which the
			// append reads instead of leaf 10.
			name:     "first record after the checkpoint rewritten with its leaf",
			tamper:   func(_ *testing.T, db pgDB) { rewriteRecord(db, 10) },
			appendOK: true, problem: trail.Changed, seq: 10,
		},
		{
			name: "last record deleted, head and root size cut",
			tamper: func(_ *testing.T, db pgDB) {
				db.exec(`DELETE FROM {records} WHERE seq = 12`)
				db.exec(`UPDATE {head} SET size = 12, root_size = 12`)
			},
			problem: trail.Changed, seq: 10,
		},
		{
			name: "last record deleted, constraint dropped, head cut, root size removed",
			tamper: func(_ *testing.T, db pgDB) {
				db.exec(dropRooted)
				db.exec(`DELETE FROM {records} WHERE seq = 12`)
				db.exec(`UPDATE {head} SET size = 12, root_size = NULL`)
			},
			openFail: true, problem: trail.Changed, seq: 10,
		},
		{
			name: "constraint dropped, negative root size",
			tamper: func(_ *testing.T, db pgDB) {
				db.exec(dropRooted)
				db.exec(`UPDATE {head} SET root_size = -1`)
			},
			openFail: true, problem: trail.Changed, seq: 10,
		},
		{
			name: "constraint dropped, record rewritten, root of a short tree",
			tamper: func(_ *testing.T, db pgDB) {
				db.exec(dropRooted)
				rewriteRecord(db, 12)
				db.exec(`UPDATE {head} SET root_size = 12`)
			},
			openFail: true, problem: trail.Changed, seq: 10,
		},
		{
			// The signed checkpoint of 10 covers record 5: a tree forged
			// consistently (rows, up columns and root) passes the append's
			// check, and is caught by the signatures.
			name:     "consistent tree forged under the checkpoint",
			tamper:   func(t *testing.T, db pgDB) { forge(t, db, 13, 5) },
			appendOK: true, cpRefused: true, problem: trail.Changed, seq: 0, // the forged stored hashes do not pinpoint it

		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, signer, vkey := rootTrail(t)
			tc.tamper(t, db)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			l, err := Open(ctx, db.url, Options{Schema: db.schema, Signer: signer})
			switch {
			case tc.openFail && !errors.Is(err, trail.ErrDamaged):
				t.Fatalf("start after the tampering: %v, want ErrDamaged", err)
			case !tc.openFail && err != nil:
				t.Fatalf("start after the tampering: %v", err)
			case err == nil:
				defer l.Close()
				_, err := l.Append(ctx, mkRec(13))
				if tc.appendOK {
					if err != nil {
						t.Fatalf("append: %v", err)
					}
					if _, err := l.Checkpoint(); tc.cpRefused != errors.Is(err, trail.ErrDamaged) || !tc.cpRefused && err != nil {
						t.Fatalf("checkpoint: %v (refusal expected: %v)", err, tc.cpRefused)
					}
				} else {
					if !errors.Is(err, trail.ErrDamaged) {
						t.Fatalf("append after the tampering: %v, want ErrDamaged", err)
					}
					if _, err := l.Checkpoint(); !errors.Is(err, trail.ErrDamaged) {
						t.Fatalf("checkpoint after the tampering: %v, want ErrDamaged", err)
					}
				}
			}
			rep := pgVerify(t, db.open(Options{NoMigrate: true}), vkey)
			if rep.OK || rep.Problem != tc.problem || rep.Seq != tc.seq {
				t.Fatalf("verify after start, append and checkpoint: %v (%+v), want %s at %d", rep, rep, tc.problem, tc.seq)
			}
			t.Logf("%v", rep)
		})
	}
}

// TestPostgresRootForgedConsistentTreeLimit pins the limit of the head's
// root: one who rewrites a record after the latest checkpoint AND every
// stored hash and the root to match leaves a tree that appends,
// checkpoints and Verify accept. Only the signed checkpoints catch
// tampering, and only of records a checkpoint covered before it
// (TestPostgresRootRefusesLaundering, "under the checkpoint").
func TestPostgresRootForgedConsistentTreeLimit(t *testing.T) {
	db, signer, vkey := rootTrail(t)
	forge(t, db, 13, 12)
	l := db.open(Options{Signer: signer})
	if _, err := l.Append(context.Background(), mkRec(13)); err != nil {
		t.Fatalf("append: %v", err)
	}
	if _, err := l.Checkpoint(); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if rep := pgVerify(t, l, vkey); !rep.OK || rep.To != 14 {
		t.Fatalf("verify: %v (the limit moved: update this test and the README)", rep)
	}
}

// TestPostgresRootOlderReplicaFailsClosed: a replica of a release that
// does not keep the root moves the size and not the root: the constraint
// refuses its append, which writes nothing.
func TestPostgresRootOlderReplicaFailsClosed(t *testing.T) {
	db, _, vkey := rootTrail(t)
	body, leaf := canonicalAt(13, 13)
	ctx := context.Background()
	tx, err := db.c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, db.sql(`SELECT size FROM {head} FOR UPDATE`)); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, db.sql(`INSERT INTO {records} (seq, kind, id, time, body, leaf) VALUES (13, 'decision', $1, $2, $3, $4)`),
		mkRec(13).ID, mkRec(13).Time, body, leaf); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, db.sql(`UPDATE {head} SET size = $1, dict = coalesce($3, dict) WHERE size = $2`), 14, 13, nil)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23514" || pe.ConstraintName != rootedConstraint {
		t.Fatalf("an older replica's head update: %v, want a violation of %s", err, rootedConstraint)
	}
	_ = tx.Rollback(ctx)
	if rep := pgVerify(t, db.open(Options{NoMigrate: true}), vkey); !rep.OK || rep.To != 13 {
		t.Fatalf("verify: %v", rep)
	}
}

// TestPostgresRootUpgradeStep: the root is filled only by the upgrade
// step, decided by the tables (the constraint absent): a trail of the
// release before the root gets it from its rows at the next start, with a
// Warn naming the size, and the constraint; a root kept by the previous
// release is checked against the rows first (also when older replicas
// appended past it), and a start refuses rows that disagree with it.
func TestPostgresRootUpgradeStep(t *testing.T) {
	_, root12 := forgedTree(t, 12, -1)
	tests := []struct {
		name   string
		before func(db pgDB) // from a rooted trail of 13 records
		fail   bool
		warn   bool
	}{
		{name: "rooted already", before: func(pgDB) {}},
		{name: "release without the root columns", warn: true, before: func(db pgDB) {
			db.exec(dropRooted)
			db.exec(`ALTER TABLE {head} DROP COLUMN root, DROP COLUMN root_size`)
		}},
		{name: "previous release, root of the head", warn: true, before: func(db pgDB) { db.exec(dropRooted) }},
		{name: "previous release, an older replica appended past the root", warn: true, before: func(db pgDB) {
			db.exec(dropRooted)
			db.exec(`UPDATE {head} SET root_size = 12, root = $1`, root12[:])
		}},
		{name: "previous release, rows changed under the root", fail: true, before: func(db pgDB) {
			db.exec(dropRooted)
			rewriteRecord(db, 12)
		}},
		{name: "previous release, wrong root below the head", fail: true, before: func(db pgDB) {
			db.exec(dropRooted)
			db.exec(`UPDATE {head} SET root_size = 12, root = sha256(root)`)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, signer, vkey := rootTrail(t)
			tc.before(db)
			var logs bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			l, err := Open(ctx, db.url, Options{Schema: db.schema, Signer: signer, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if tc.fail {
				if !errors.Is(err, trail.ErrDamaged) {
					t.Fatalf("start: %v, want ErrDamaged", err)
				}
				if db.count(`SELECT count(*) FROM pg_constraint WHERE conrelid = '{head}'::regclass AND conname = '`+rootedConstraint+`'`) != 0 {
					t.Fatal("the refused upgrade step added the constraint")
				}
				return
			}
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			defer l.Close()
			if got := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "size=13"); got != tc.warn {
				t.Fatalf("warn naming size 13: %v, want %v (log: %q)", got, tc.warn, logs.String())
			}
			if db.count(`SELECT count(*) FROM pg_constraint WHERE conrelid = '{head}'::regclass AND conname = '`+rootedConstraint+`'`) != 1 {
				t.Fatal("no constraint after the upgrade step")
			}
			pgAppendN(t, l, 13, 2)
			if rep := pgVerify(t, l, vkey); !rep.OK || rep.To != 15 {
				t.Fatalf("verify: %v", rep)
			}
		})
	}
}
