package pgtrail

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ciampdp/pdp/pdp/trail"
)

// oldLayoutDDL is the trail's tables as PDPs before layout 1 created
// them: every stored hash in trail_hashes, no up column.
const oldLayoutDDL = `
CREATE SCHEMA {schema};
CREATE TABLE {records} (seq bigint PRIMARY KEY, kind text NOT NULL, id text NOT NULL, time timestamptz NOT NULL,
	body bytea, leaf bytea NOT NULL, pruned boolean NOT NULL DEFAULT false, dict bigint);
CREATE INDEX trail_records_id ON {records} (id);
CREATE INDEX trail_records_kind_time ON {records} (kind, time) WHERE NOT pruned;
CREATE TABLE {hashes} (idx bigint PRIMARY KEY, hash bytea NOT NULL);
CREATE TABLE {checkpoints} (size bigint PRIMARY KEY, signed text NOT NULL, written_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE {head} (one int PRIMARY KEY CHECK (one = 1), size bigint NOT NULL, dict bigint);
`

// writeOldLayout builds, with SQL alone, a trail of n records mkRec(0..n-1)
// in the old layout, with a checkpoint of all of them, and returns it.
func writeOldLayout(t *testing.T, db pgDB, signer note.Signer, n int) []byte {
	t.Helper()
	db.exec(strings.ReplaceAll(oldLayoutDDL, "{schema}", db.schema))
	var tree []tlog.Hash
	for i := range n {
		body, leaf := canonicalAt(i, uint64(i))
		hs, err := tlog.StoredHashesForRecordHash(int64(i), tlog.Hash(leaf), memHashes(tree))
		if err != nil {
			t.Fatal(err)
		}
		idx := int64(len(tree))
		tree = append(tree, hs...)
		db.exec(`INSERT INTO {records} (seq, kind, id, time, body, leaf) VALUES ($1, 'decision', $2, $3, $4, $5)`,
			i, mkRec(i).ID, mkRec(i).Time, body, leaf)
		for k, h := range hs {
			db.exec(`INSERT INTO {hashes} (idx, hash) VALUES ($1, $2)`, idx+int64(k), h[:])
		}
	}
	db.exec(`INSERT INTO {head} (one, size) VALUES (1, $1)`, n)
	root, err := tlog.TreeHash(int64(n), memHashes(tree))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := trail.TreeHead{Origin: trail.DefaultOrigin, Size: uint64(n), Root: root}.Sign(signer)
	if err != nil {
		t.Fatal(err)
	}
	db.exec(`INSERT INTO {checkpoints} (size, signed) VALUES ($1, $2)`, n, string(signed))
	return signed
}

// A trail written in the old layout (trail_hashes with every stored hash)
// is migrated by Open: it verifies, every record proves against the old
// checkpoint, appends, pruning and reopening work, trail_hashes is empty
// and refuses the rows an older PDP would write.
func TestPostgresMigratesOldLayout(t *testing.T) {
	const n = 37
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	cp := writeOldLayout(t, db, signer, n)

	l := db.open(Options{Signer: signer})
	if got := db.count(`SELECT count(*) FROM {hashes}`); got != 0 {
		t.Fatalf("trail_hashes keeps %d rows after the migration", got)
	}
	if got := db.count(`SELECT count(*) + coalesce(sum(length(up)), 0) / 32 FROM {records}`); got != tlog.StoredHashCount(n) {
		t.Fatalf("the records hold %d stored hashes, want %d", got, tlog.StoredHashCount(n))
	}
	if got := db.count(`SELECT count(*) FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2`, db.schema+".trail_hashes", retiredConstraint); got != 1 {
		t.Fatalf("%d constraints retiring trail_hashes, want 1", got)
	}
	if rep := pgVerify(t, l, vkey); !rep.OK || rep.Anchored != n {
		t.Fatalf("verify after the migration: %v", rep)
	}
	checkProofs(t, l, vkey, cp, seqsUpTo(n)...)

	// An older PDP's append writes into trail_hashes: refused.
	if _, err := db.c.Exec(context.Background(), db.sql(`INSERT INTO {hashes} (idx, hash) VALUES (1000, '\x00')`)); err == nil ||
		!strings.Contains(err.Error(), retiredConstraint) {
		t.Fatalf("an old-layout insert into trail_hashes: %v", err)
	}

	pgAppendN(t, l, n, 20)
	cp2, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prune(context.Background(), "decision", epoch.Add(10*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = db.open(Options{Signer: signer}) // a second Open migrates nothing
	if rep := pgVerify(t, l, vkey); !rep.OK || rep.Anchored != n+20 || rep.Pruned != 10 {
		t.Fatalf("verify after appends and pruning: %v", rep)
	}
	for _, seq := range []uint64{0, 5, n - 1, n, n + 19} {
		p, err := l.Prove(seq, cp2)
		if err != nil {
			t.Fatalf("prove %d: %v", seq, err)
		}
		rec, err := l.Get(seq)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Pruned {
			if p.RecordHash.String() == "" || tlog.CheckRecord(p.Hashes, int64(p.TreeSize), mustHead(t, cp2).Root, int64(seq), p.RecordHash) != nil {
				t.Fatalf("tombstone %d does not prove", seq)
			}
			continue
		}
		if err := trail.CheckProof(vkey, cp2, rec, p); err != nil {
			t.Fatalf("proof of %d: %v", seq, err)
		}
	}
}

func mustHead(t *testing.T, signed []byte) trail.TreeHead {
	t.Helper()
	h, err := trail.UnverifiedHead(signed)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A log opened with NoMigrate (pdp log, replay, audit beside older
// replicas) reads an old-layout trail as it is: verify and prove work,
// trail_hashes is untouched, appends are refused, and tampering is still
// found. The next Open without it migrates.
func TestPostgresNoMigrateReadsOldLayout(t *testing.T) {
	const n = 21
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	cp := writeOldLayout(t, db, signer, n)

	l := db.open(Options{NoMigrate: true})
	if rep := pgVerify(t, l, vkey); !rep.OK || rep.Anchored != n {
		t.Fatalf("verify of the old layout: %v", rep)
	}
	checkProofs(t, l, vkey, cp, 0, 7, n-1)
	if _, err := l.Append(context.Background(), mkRec(n)); !errors.Is(err, trail.ErrBadOption) {
		t.Fatalf("append to an unmigrated trail: %v", err)
	}
	if got := db.count(`SELECT count(*) FROM {hashes}`); got != tlog.StoredHashCount(n) {
		t.Fatalf("trail_hashes has %d rows, want %d untouched", got, tlog.StoredHashCount(n))
	}
	db.exec(`UPDATE {hashes} SET hash = sha256(hash) WHERE idx = $1`, tlog.StoredHashIndex(0, 5))
	if rep := pgVerify(t, l, vkey); rep.Problem != trail.StoredHashes || rep.Seq != 5 {
		t.Fatalf("old layout, stored hash changed: %v", rep)
	}
	db.exec(`UPDATE {hashes} SET hash = sha256(hash) WHERE idx = $1`, tlog.StoredHashIndex(0, 5)) // not undone: refused below
	if _, err := Open(context.Background(), db.url, Options{Schema: db.schema}); !errors.Is(err, trail.ErrDamaged) {
		t.Fatalf("migrating a damaged trail: %v", err)
	}
}

// An old-layout trail whose stored hashes and leaf column disagree is
// not migrated: Open fails, and the tables stay as they were, for the
// previous PDP's verify to report.
func TestPostgresMigrationRefusesDamagedTrail(t *testing.T) {
	for _, tc := range []struct {
		name, tamper, want string
	}{
		{"leaf column differs", `UPDATE {records} SET leaf = sha256(leaf) WHERE seq = 6`, "record 6"},
		{"stored hash missing", `DELETE FROM {hashes} WHERE idx = 3`, "trail_hashes holds"},
		{"record missing", `DELETE FROM {records} WHERE seq = 9`, "record 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := newPGDB(t)
			signer, _ := newKeys(t)
			writeOldLayout(t, db, signer, 12)
			db.exec(tc.tamper)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			l, err := Open(ctx, db.url, Options{Schema: db.schema, Signer: signer})
			if err == nil {
				_ = l.Close()
				t.Fatal("a damaged old-layout trail was migrated")
			}
			if !errors.Is(err, trail.ErrDamaged) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("open: %v, want ErrDamaged naming %q", err, tc.want)
			}
			if got := db.count(`SELECT count(*) FROM {hashes}`); got == 0 {
				t.Fatal("trail_hashes emptied by a refused migration")
			}
		})
	}
}

// checkProofs proves each record of seqs in l against the checkpoint cp
// and checks the proof under vkey.
func checkProofs(t *testing.T, l *Log, vkey string, cp []byte, seqs ...uint64) {
	t.Helper()
	for _, seq := range seqs {
		p, err := l.Prove(seq, cp)
		if err != nil {
			t.Fatalf("prove %d: %v", seq, err)
		}
		rec, err := l.Get(seq)
		if err != nil {
			t.Fatal(err)
		}
		if err := trail.CheckProof(vkey, cp, rec, p); err != nil {
			t.Fatalf("proof of %d: %v", seq, err)
		}
	}
}

// seqsUpTo is 0…n-1.
func seqsUpTo(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i)
	}
	return out
}
