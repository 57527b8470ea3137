package pgtrail

import (
	"context"
	"errors"
	"testing"

	"github.com/ciampdp/pdp/pdp/trail"
)

// pgTrailBeyondCheckpoint writes 20 records with checkpoints at 10 and 20,
// then extra records no checkpoint covers (by a replica without a key),
// applies tamper, and opens the trail as a reader (NoMigrate: no Open
// of a replica runs between the tampering and the check).
func pgTrailBeyondCheckpoint(t *testing.T, extra int, tamper func(pgDB)) (*Log, string) {
	t.Helper()
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	l := db.open(Options{Signer: signer})
	pgAppendN(t, l, 0, 10)
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	pgAppendN(t, l, 10, 10)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = db.open(Options{})
	pgAppendN(t, l, 20, extra)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	tamper(db)
	return db.open(Options{NoMigrate: true}), vkey
}

// TestPostgresVerifyFindsTamperingBeyondCheckpoint: the records after
// the latest checkpoint are checked against the root the head keeps, the
// only copy of their hashes beside their rows: a newest record rewritten
// with its leaf column, or the last record dropped with the head cut to
// match, is found; a head without a root is not reported as ok.
func TestPostgresVerifyFindsTamperingBeyondCheckpoint(t *testing.T) {
	rewrite := func(seq int) func(pgDB) {
		return func(db pgDB) {
			body, leaf := canonicalAt(99, uint64(seq))
			db.exec(`UPDATE {records} SET body = $2, leaf = $3, id = 'd-0099', time = $4 WHERE seq = $1`, seq, body, leaf, mkRec(99).Time)
		}
	}
	tests := []struct {
		name    string
		extra   int
		tamper  func(db pgDB)
		problem trail.Problem
		seq     uint64
	}{
		{name: "untouched", extra: 2, tamper: func(pgDB) {}},
		{name: "newest unpaired record rewritten with its leaf", extra: 1, tamper: rewrite(20), problem: trail.Changed, seq: 20},
		{name: "unpaired record rewritten with its leaf", extra: 3, tamper: rewrite(22), problem: trail.Changed, seq: 20},
		{
			name: "last record dropped, head and root size cut", extra: 2,
			tamper: func(db pgDB) {
				db.exec(`DELETE FROM {records} WHERE seq = 21`)
				db.exec(`UPDATE {head} SET size = 21, root_size = 21`)
			},
			problem: trail.Changed, seq: 20,
		},
		{
			name: "last record dropped, constraint dropped, head cut", extra: 2,
			tamper: func(db pgDB) {
				db.exec(`DELETE FROM {records} WHERE seq = 21`)
				db.exec(`ALTER TABLE {head} DROP CONSTRAINT ` + rootedConstraint)
				db.exec(`UPDATE {head} SET size = 21`)
			},
			problem: trail.Dropped, seq: 21,
		},
		{
			name: "head's root removed with the constraint", extra: 2,
			tamper: func(db pgDB) {
				db.exec(`ALTER TABLE {head} DROP CONSTRAINT ` + rootedConstraint)
				db.exec(`UPDATE {head} SET root = NULL, root_size = NULL`)
			},
			problem: trail.StoredHashes, seq: 20,
		},
		{
			name: "head's root replaced", extra: 2,
			tamper:  func(db pgDB) { db.exec(`UPDATE {head} SET root = sha256(root)`) },
			problem: trail.Changed, seq: 20,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, vkey := pgTrailBeyondCheckpoint(t, tc.extra, tc.tamper)
			rep := pgVerify(t, l, vkey)
			if tc.problem == "" {
				if !rep.OK || rep.Anchored != 20 || rep.Unanchored != uint64(tc.extra) {
					t.Fatalf("untouched trail: %+v", rep)
				}
				return
			}
			if rep.OK || rep.Problem != tc.problem || rep.Seq != tc.seq {
				t.Fatalf("got %v (%+v), want %s at %d", rep, rep, tc.problem, tc.seq)
			}
			t.Logf("%v", rep)
		})
	}
}

// TestPostgresAppendRefusesCutHead: a head whose size went back below the
// tree its root is of was cut outside the PDP; appends fail closed
// instead of writing over the gap.
func TestPostgresAppendRefusesCutHead(t *testing.T) {
	db := newPGDB(t)
	l := db.open(Options{})
	pgAppendN(t, l, 0, 4)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	db.exec(`DELETE FROM {records} WHERE seq = 3`)
	db.exec(`UPDATE {head} SET size = 3, root_size = 3`) // the constraint wants both
	l = db.open(Options{})
	if _, err := l.Append(context.Background(), mkRec(3)); !errors.Is(err, trail.ErrDamaged) {
		t.Fatalf("an append over a cut head: %v, want ErrDamaged", err)
	}
}
