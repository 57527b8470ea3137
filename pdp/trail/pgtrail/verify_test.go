package pgtrail

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ciampdp/pdp/pdp/trail"
)

// pgTamperedTrail writes 20 records with checkpoints at 10 and 20 (on
// Close), applies tamper, and reopens the trail for reading, as pdp log
// verify does (a replica refuses to start on rows beyond the head).
func pgTamperedTrail(t *testing.T, tamper func(pgDB)) (*Log, string) {
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
	if tamper != nil {
		tamper(db)
	}
	return db.open(Options{NoMigrate: true}), vkey
}

// canonicalAt is the canonical record i as the trail stores it at seq.
func canonicalAt(i int, seq uint64) ([]byte, []byte) {
	rec := mkRec(i)
	rec.Seq = seq
	b, _ := trail.Canonical(rec)
	h := tlog.RecordHash(b)
	return b, h[:]
}

func TestPostgresVerifyFindsTampering(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(db pgDB)
		problem trail.Problem
		seq     uint64
	}{
		{name: "untouched", tamper: func(pgDB) {}},
		{
			name: "body byte changed",
			tamper: func(db pgDB) {
				db.exec(`UPDATE {records} SET body = convert_to(replace(convert_from(body, 'UTF8'), 'allow', 'Allow'), 'UTF8') WHERE seq = 4`)
			},
			problem: trail.Changed, seq: 4,
		},
		{
			name:    "record deleted",
			tamper:  func(db pgDB) { db.exec(`DELETE FROM {records} WHERE seq = 4`) },
			problem: trail.Dropped, seq: 4,
		},
		{
			name:    "last record deleted",
			tamper:  func(db pgDB) { db.exec(`DELETE FROM {records} WHERE seq = 19`) },
			problem: trail.Dropped, seq: 19,
		},
		{
			name: "bodies swapped",
			tamper: func(db pgDB) {
				db.exec(`UPDATE {records} r SET body = o.body FROM {records} o WHERE (r.seq, o.seq) IN ((3, 6), (6, 3))`)
			},
			problem: trail.Reordered, seq: 3,
		},
		{
			name: "neighbours swapped with their columns",
			tamper: func(db pgDB) {
				db.exec(`UPDATE {records} SET seq = 1011 WHERE seq = 11`)
				db.exec(`UPDATE {records} SET seq = 11 WHERE seq = 12`)
				db.exec(`UPDATE {records} SET seq = 12 WHERE seq = 1011`)
			},
			problem: trail.Reordered, seq: 11,
		},
		{
			name: "record inserted",
			tamper: func(db pgDB) {
				body, leaf := canonicalAt(99, 5)
				db.exec(`UPDATE {records} SET seq = seq + 1000 WHERE seq >= 5`)
				db.exec(`UPDATE {records} SET seq = seq - 999 WHERE seq >= 1000`)
				db.exec(`INSERT INTO {records} (seq, kind, id, time, body, leaf) VALUES (5, 'decision', 'd-0099', $1, $2, $3)`, mkRec(99).Time, body, leaf)
			},
			problem: trail.Inserted, seq: 5,
		},
		{
			name: "record appended behind the head",
			tamper: func(db pgDB) {
				body, leaf := canonicalAt(20, 20)
				db.exec(`INSERT INTO {records} (seq, kind, id, time, body, leaf) VALUES (20, 'decision', 'd-0020', $1, $2, $3)`, mkRec(20).Time, body, leaf)
			},
			problem: trail.Inserted, seq: 20,
		},
		{
			name:    "id column changed",
			tamper:  func(db pgDB) { db.exec(`UPDATE {records} SET id = 'd-9999' WHERE seq = 7`) },
			problem: trail.Changed, seq: 7,
		},
		{
			name:    "leaf column changed",
			tamper:  func(db pgDB) { db.exec(`UPDATE {records} SET leaf = sha256(leaf) WHERE seq = 8`) },
			problem: trail.StoredHashes, seq: 8,
		},
		// Stored hashes live in the leaf and up columns (layout 1); a
		// changed level-1 hash disowns its pair of records.
		{
			name:    "stored hash changed",
			tamper:  func(db pgDB) { db.exec(`UPDATE {records} SET up = sha256(up) WHERE seq = 5`) },
			problem: trail.StoredHashes, seq: 4,
		},
		{
			name: "interior stored hash changed",
			tamper: func(db pgDB) {
				db.exec(`UPDATE {records} SET up = substr(up, 1, 32) || sha256(substr(up, 33, 32)) WHERE seq = 11`)
			},
			problem: trail.StoredHashes, seq: 11,
		},
		{
			name:    "stored hash deleted",
			tamper:  func(db pgDB) { db.exec(`UPDATE {records} SET up = NULL WHERE seq = 15`) },
			problem: trail.StoredHashes, seq: 20,
		},
		{
			name:    "stored hashes of a record cut short",
			tamper:  func(db pgDB) { db.exec(`UPDATE {records} SET up = substr(up, 1, 32) WHERE seq = 3`) },
			problem: trail.StoredHashes, seq: 20,
		},
		{
			name:    "stored hashes recomputed after a change",
			tamper:  recomputeAfterChange(13),
			problem: trail.Changed, seq: 10,
		},
		{
			name: "checkpoint forged",
			tamper: func(db pgDB) {
				db.exec(`UPDATE {checkpoints} SET signed = replace(signed, E'\n20\n', E'\n21\n'), size = 21 WHERE size = 20`)
			},
			problem: trail.BadCheckpoint, seq: 21,
		},
		{
			name:    "checkpoint refiled",
			tamper:  func(db pgDB) { db.exec(`UPDATE {checkpoints} SET size = 30 WHERE size = 10`) },
			problem: trail.BadCheckpoint, seq: 10,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, vkey := pgTamperedTrail(t, tc.tamper)
			rep := pgVerify(t, l, vkey)
			if tc.problem == "" {
				if !rep.OK || rep.To != 20 || rep.Checkpoints != 2 || rep.Anchored != 20 {
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

// recomputeAfterChange changes record seq and rewrites every stored hash to
// match: only the signed checkpoints can tell.
func recomputeAfterChange(seq int64) func(pgDB) {
	return func(db pgDB) {
		db.t.Helper()
		db.exec(`UPDATE {records} SET body = convert_to(replace(convert_from(body, 'UTF8'), 'allow', 'deny!'), 'UTF8') WHERE seq = $1`, seq)
		rows, err := db.c.Query(context.Background(), db.sql(`SELECT body FROM {records} ORDER BY seq`))
		if err != nil {
			db.t.Fatal(err)
		}
		bodies, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			db.t.Fatal(err)
		}
		var tree []tlog.Hash
		for i, b := range bodies {
			hs, err := tlog.StoredHashesForRecordHash(int64(i), tlog.RecordHash(b), memHashes(tree))
			if err != nil {
				db.t.Fatal(err)
			}
			tree = append(tree, hs...)
		}
		// The leaf and up columns hold the stored hashes (layout 1).
		seqs, leafs, ups := make([]int64, len(bodies)), make([][]byte, len(bodies)), make([][]byte, len(bodies))
		for i := range bodies {
			idx := tlog.StoredHashIndex(0, int64(i))
			seqs[i], leafs[i] = int64(i), tree[idx][:]
			for _, h := range tree[idx+1 : idx+1+int64(upLevels(int64(i)))] {
				ups[i] = append(ups[i], h[:]...)
			}
		}
		db.exec(`UPDATE {records} r SET leaf = u.leaf, up = u.up FROM unnest($1::bigint[], $2::bytea[], $3::bytea[]) AS u(seq, leaf, up)
			WHERE r.seq = u.seq`, seqs, leafs, ups)
	}
}

func TestPostgresVerifyRangeAndKey(t *testing.T) {
	l, vkey := pgTamperedTrail(t, func(db pgDB) {
		db.exec(`UPDATE {records} SET body = convert_to(replace(convert_from(body, 'UTF8'), 'allow', 'deny!'), 'UTF8') WHERE seq = 13`)
	})
	ctx := context.Background()
	if rep, err := l.Verify(ctx, vkey, 0, 10); err != nil || !rep.OK || rep.To != 10 {
		t.Fatalf("[0,10): %+v %v", rep, err)
	}
	if rep, err := l.Verify(ctx, vkey, 10, 20); err != nil || rep.OK || rep.Seq != 13 {
		t.Fatalf("[10,20): %+v %v", rep, err)
	}
	_, other := newKeys(t)
	if rep := pgVerify(t, l, other); rep.OK || rep.Problem != trail.BadCheckpoint {
		t.Fatalf("other key: %+v", rep)
	}
	l.opts.Origin = "another/trail"
	if rep := pgVerify(t, l, vkey); rep.Problem != trail.BadCheckpoint {
		t.Fatalf("other origin: %+v", rep)
	}
	if _, err := l.Verify(ctx, "not a key", 0, 1); err == nil {
		t.Fatal("bad key accepted")
	}
}

// A proof from one replica, for a record another replica wrote, checks with
// the public key alone.
func TestPostgresProve(t *testing.T) {
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	a, b := db.open(Options{Signer: signer}), db.open(Options{Signer: signer})
	pgAppendN(t, a, 0, 5)
	early, err := b.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	pgAppendN(t, b, 5, 18)
	cp, err := a.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	for seq := range uint64(23) {
		rec, err := b.Get(seq)
		if err != nil {
			t.Fatal(err)
		}
		p, err := a.Prove(seq, cp)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := json.Marshal(p)
		var p2 trail.Proof
		if err := json.Unmarshal(js, &p2); err != nil {
			t.Fatal(err)
		}
		if err := trail.CheckProof(vkey, cp, rec, p2); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
	rec, _ := a.Get(3)
	p, err := b.Prove(3, early)
	if err != nil {
		t.Fatal(err)
	}
	if err := trail.CheckProof(vkey, early, rec, p); err != nil {
		t.Fatal(err)
	}
	if err := trail.CheckProof(vkey, cp, rec, p); !errors.Is(err, trail.ErrProof) {
		t.Fatalf("proof against the wrong checkpoint: %v", err)
	}
	if _, err := a.Prove(7, early); !errors.Is(err, trail.ErrNotFound) {
		t.Fatalf("prove beyond checkpoint: %v", err)
	}
	changed := rec
	changed.Body = json.RawMessage(`{"i":3,"effect":"deny"}`)
	if err := trail.CheckProof(vkey, early, changed, p); !errors.Is(err, trail.ErrProof) {
		t.Fatalf("changed record: %v", err)
	}
	// A checkpoint of another trail of the same size is refused.
	other := newPGDB(t).open(Options{Signer: signer})
	if _, err := other.Append(context.Background(), mkRec(100), mkRec(101), mkRec(102), mkRec(103), mkRec(104)); err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Prove(3, foreign); err == nil {
		t.Fatal("proof for another trail's checkpoint")
	}
}

func TestPostgresPrune(t *testing.T) {
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	l := db.open(Options{Signer: signer})
	ctx := context.Background()
	for i := range 20 {
		rec := mkRec(i)
		if i%2 == 1 {
			rec.Kind = "admin"
		}
		if _, err := l.Append(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	// Decisions 0, 2, 4, 6, 8 are older than 10ms after epoch.
	if n, err := l.Prune(ctx, "decision", epoch.Add(10*time.Millisecond)); err != nil || n != 5 {
		t.Fatalf("prune: %d %v", n, err)
	}
	if n, err := l.Prune(ctx, "decision", epoch.Add(10*time.Millisecond)); err != nil || n != 0 {
		t.Fatalf("prune again: %d %v", n, err)
	}
	if rep := pgVerify(t, l, vkey); !rep.OK {
		t.Fatalf("verify after prune: %v", rep)
	}
	tomb, err := l.Get(2)
	if err != nil || !tomb.Pruned || tomb.Body != nil || tomb.Leaf == "" || tomb.ID != "d-0002" {
		t.Fatalf("tombstone: %+v %v", tomb, err)
	}
	if r, err := l.Get(3); err != nil || r.Pruned || r.Body == nil {
		t.Fatalf("admin record pruned: %+v %v", r, err)
	}
	if r, err := l.Get(10); err != nil || r.Pruned {
		t.Fatalf("record at the cut-off pruned: %+v %v", r, err)
	}
	p, err := l.Prove(2, cp)
	if err != nil {
		t.Fatal(err)
	}
	if err := trail.CheckProof(vkey, cp, tomb, p); err != nil {
		t.Fatalf("tombstone proof: %v", err)
	}
	var pruned int
	if err := l.Scan(0, 20, func(r trail.Record) error {
		if r.Pruned {
			pruned++
		}
		return nil
	}); err != nil || pruned != 5 {
		t.Fatalf("scan: %d tombstones, %v", pruned, err)
	}
	// Retention rules: admin records older than 15ms before "now" go (1, 3,
	// … 13 of them are before epoch+15ms), decisions are kept.
	counts, err := l.ApplyRetention(ctx, []trail.RetentionRule{{Kind: "admin", Keep: 5 * time.Millisecond}, {Kind: "decision"}},
		epoch.Add(20*time.Millisecond))
	if err != nil || counts["admin"] != 7 || counts["decision"] != 0 {
		t.Fatalf("retention: %v %v", counts, err)
	}
	if _, err := l.ApplyRetention(ctx, []trail.RetentionRule{{Kind: "admin", Keep: -1}}, epoch); !errors.Is(err, trail.ErrBadOption) {
		t.Fatalf("bad rule: %v", err)
	}
	if _, err := l.Prune(ctx, "", epoch); !errors.Is(err, trail.ErrBadOption) {
		t.Fatalf("prune without a kind: %v", err)
	}
	if rep := pgVerify(t, l, vkey); !rep.OK {
		t.Fatalf("verify after retention: %v", rep)
	}
	pgAppendN(t, l, 20, 3)
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if rep := pgVerify(t, l, vkey); !rep.OK || rep.Anchored != 23 {
		t.Fatalf("verify after more appends: %v", rep)
	}

	// A tampered record is not laundered into a tombstone.
	db.exec(`UPDATE {records} SET body = convert_to(replace(convert_from(body, 'UTF8'), 'allow', 'deny!'), 'UTF8') WHERE seq = 12`)
	n, err := l.Prune(ctx, "decision", epoch.Add(16*time.Millisecond))
	if n != 2 || !errors.Is(err, trail.ErrDamaged) {
		t.Fatalf("prune with a tampered record: %d %v", n, err)
	}
	if rep := pgVerify(t, l, vkey); rep.Problem != trail.Changed || rep.Seq != 12 {
		t.Fatalf("tampered record: %+v", rep)
	}
	// A tombstone's leaf is evidence too.
	db.exec(`UPDATE {records} SET leaf = sha256(leaf) WHERE seq = 0`)
	if rep := pgVerify(t, l, vkey); rep.Problem != trail.Changed || rep.Seq != 0 {
		t.Fatalf("tombstone leaf changed: %+v", rep)
	}
}
