package pgtrail

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// pgCompressedTrail writes 20 big records with s2: records 0-2 plain, the
// dictionary at seq 3, records 3-19 compressed at seqs 4-20; checkpoints
// at 10 and 21 (on Close). It applies tamper and reopens the trail.
func pgCompressedTrail(t *testing.T, tamper func(pgDB)) (*Log, pgDB, string) {
	t.Helper()
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	opts := Options{Signer: signer, Compression: trail.CompressionS2, DictionarySize: smallDict}
	l := db.open(opts)
	appendBig(t, l, 0, 9)
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	appendBig(t, l, 9, 11)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if db.count(`SELECT seq FROM {records} WHERE kind = 'trail.dictionary'`) != 3 ||
		db.count(`SELECT count(*) FROM {records} WHERE dict = 3`) != 17 {
		t.Fatal("the trail is not laid out as the cases expect")
	}
	tamper(db)
	return db.open(Options{Signer: signer}), db, vkey // a reader: a compressing replica would not open a damaged dictionary
}

// TestPostgresCompressionTamperDetected: a changed compressed body or
// dict column, and a changed, deleted or emptied dictionary row, are
// found by Verify at the first record they break.
func TestPostgresCompressionTamperDetected(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(db pgDB)
		seq     uint64
		problem trail.Problem // "" when any problem at seq will do
	}{
		{name: "untouched", tamper: func(pgDB) {}},
		{
			name: "compressed body byte changed",
			tamper: func(db pgDB) {
				db.exec(`UPDATE {records} SET body = set_byte(body, 20, (get_byte(body, 20) + 1) % 256) WHERE seq = 12`)
			},
			seq:     12,
			problem: trail.Changed,
		},
		{
			name: "compressed body's last byte changed",
			tamper: func(db pgDB) {
				db.exec(`UPDATE {records} SET body = set_byte(body, length(body) - 1, (get_byte(body, length(body) - 1) + 7) % 256) WHERE seq = 12`)
			},
			seq:     12,
			problem: trail.Changed,
		},
		{
			name: "compressed body truncated",
			tamper: func(db pgDB) {
				db.exec(`UPDATE {records} SET body = substring(body from 1 for length(body) - 4) WHERE seq = 12`)
			},
			seq:     12,
			problem: trail.Changed,
		},
		{
			name: "compressed bodies swapped",
			tamper: func(db pgDB) {
				db.exec(`UPDATE {records} r SET body = o.body FROM {records} o WHERE (r.seq, o.seq) IN ((12, 14), (14, 12))`)
			},
			seq: 12,
		},
		{
			name:   "dict column cleared",
			tamper: func(db pgDB) { db.exec(`UPDATE {records} SET dict = NULL WHERE seq = 12`) },
			seq:    12,
		},
		{
			name:    "dict column names a record that is no dictionary",
			tamper:  func(db pgDB) { db.exec(`UPDATE {records} SET dict = 2 WHERE seq = 12`) },
			seq:     12,
			problem: trail.Changed,
		},
		{
			name:    "dict column names a later record",
			tamper:  func(db pgDB) { db.exec(`UPDATE {records} SET dict = 15 WHERE seq = 12`) },
			seq:     12,
			problem: trail.Changed,
		},
		{
			name:    "plain row given a dict",
			tamper:  func(db pgDB) { db.exec(`UPDATE {records} SET dict = 0 WHERE seq = 1`) },
			seq:     1,
			problem: trail.Changed,
		},
		{
			name: "dictionary content changed",
			tamper: func(db pgDB) {
				// A and B appear in no field but the base64 content.
				db.exec(`UPDATE {records} SET body = convert_to(translate(convert_from(body, 'UTF8'), 'AB', 'BA'), 'UTF8') WHERE seq = 3`)
			},
			seq:     3,
			problem: trail.Changed,
		},
		{
			name: "dictionary codec changed",
			tamper: func(db pgDB) {
				db.exec(`UPDATE {records} SET body = convert_to(replace(convert_from(body, 'UTF8'), '"s2-dict"', '"zstd-raw"'), 'UTF8') WHERE seq = 3`)
			},
			seq:     3,
			problem: trail.Changed,
		},
		{
			// Reported as the record now at position 3 that cannot be
			// expanded (its dictionary is gone), or as the gap.
			name:   "dictionary row deleted",
			tamper: func(db pgDB) { db.exec(`DELETE FROM {records} WHERE seq = 3`) },
			seq:    3,
		},
		{
			// The tombstone keeps its leaf, so the tree holds; the
			// records compressed with it cannot be read.
			name:    "dictionary row emptied into a tombstone",
			tamper:  func(db pgDB) { db.exec(`UPDATE {records} SET body = NULL, pruned = true WHERE seq = 3`) },
			seq:     4,
			problem: trail.Changed,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _, vkey := pgCompressedTrail(t, tc.tamper)
			rep := pgVerify(t, l, vkey)
			if tc.seq == 0 {
				if !rep.OK || rep.To != 21 || rep.Checkpoints != 2 {
					t.Fatalf("untouched trail: %+v", rep)
				}
				return
			}
			if rep.OK || rep.Seq != tc.seq || tc.problem != "" && rep.Problem != tc.problem {
				t.Fatalf("got %v (%+v), want %q at %d", rep, rep, tc.problem, tc.seq)
			}
			t.Logf("%v", rep)
		})
	}
}

// TestPostgresPruneKeepsTamperedCompressedRow: retention does not turn a
// compressed row that no longer expands to its leaf into a tombstone that
// verifies; it prunes the others and says ErrDamaged.
func TestPostgresPruneKeepsTamperedCompressedRow(t *testing.T) {
	l, db, vkey := pgCompressedTrail(t, func(db pgDB) {
		db.exec(`UPDATE {records} SET body = set_byte(body, 20, (get_byte(body, 20) + 1) % 256) WHERE seq = 12`)
	})
	n, err := l.Prune(context.Background(), "decision", epoch.Add(time.Hour))
	if !errors.Is(err, trail.ErrDamaged) || n != 19 {
		t.Fatalf("prune: %d %v, want 19 and ErrDamaged", n, err)
	}
	if db.count(`SELECT count(*) FROM {records} WHERE seq = 12 AND NOT pruned AND dict = 3`) != 1 {
		t.Fatal("the tampered row was pruned")
	}
	if rep := pgVerify(t, l, vkey); rep.OK || rep.Seq != 12 {
		t.Fatalf("verify after prune: %+v", rep)
	}
}
