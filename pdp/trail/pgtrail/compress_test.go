package pgtrail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// mkBigRec is a decision record of about 1 KB that shares most of its
// text with the others, as real decisions do.
func mkBigRec(i int) trail.Record {
	t := epoch.Add(time.Duration(i) * time.Millisecond)
	body := fmt.Sprintf(`{"decision":{"id":"d-%06d","time":%q,"allowed":%t,"reasons":["consent.granted","delegation.valid"]},`+
		`"request":{"subject":{"type":"user","id":"user-%d"},"action":{"name":"pay"},"resource":{"type":"account","id":"acc-%d"},`+
		`"context":{"amount":%d,"currency":"EUR","channel":"mobile"}},"facts":{"risk":"low","kyc":"verified","segment":"retail","country":"DE"},`+
		`"policy":{"version":"sha256:9f2c6b1d8e0a4f3b7c5d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b","engine":"cedar"},`+
		`"delegation":{"id":"poa-%d","grantor":"alice","grantee":"bob","scope":["pay","view_balance"],"valid_until":"2027-01-01T00:00:00Z"},`+
		`"consent":{"purpose":"payments","granted_at":"2026-11-01T10:00:00Z","ledger_seq":%d},"duration_ns":%d}`,
		i, t.Format(time.RFC3339Nano), i%3 != 0, i%17, i%5, 100+i*7, i%4, 1000+i, 20000+i*13)
	return trail.CompactRecord("decision", fmt.Sprintf("d-%06d", i), t, []byte(body))
}

// smallDict is a dictionary size that three big records fill, two do not.
var smallDict = func() int {
	enc, _ := trail.Canonical(mkBigRec(0))
	return 2*len(enc) + 32
}()

func appendBig(t testing.TB, l *Log, from, n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for i := from; i < from+n; i++ {
		s, err := l.Append(context.Background(), mkBigRec(i))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, s...)
	}
	return seqs
}

// sameRecord fails unless got is the big record i stored at seq.
func sameRecord(t *testing.T, got trail.Record, i int, seq uint64) {
	t.Helper()
	want := mkBigRec(i)
	want.Seq = seq
	w, _ := trail.Canonical(want)
	g, err := trail.Canonical(got)
	if err != nil || !bytes.Equal(g, w) {
		t.Fatalf("record %d at seq %d reads back as\n%s\nwant\n%s (%v)", i, seq, g, w, err)
	}
}

// TestPostgresCompressedRoundTrip: a trail written plain, then by a
// replica that compresses, then by one that does not: one dictionary
// record, compressed rows from the batch that stores it on, every record
// reads back by seq, id and scan (also through a Log that has not seen
// the dictionary), verifies, is proven, and is pruned.
func TestPostgresCompressedRoundTrip(t *testing.T) {
	for _, mode := range []string{trail.CompressionS2, trail.CompressionZstd} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			db := newPGDB(t)
			signer, vkey := newKeys(t)
			old := db.open(Options{Signer: signer})
			appendBig(t, old, 0, 10) // rows of a trail written before compression
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}

			l := db.open(Options{Signer: signer, Compression: mode, DictionarySize: smallDict})
			seqOf := map[int]uint64{}
			for i := range 10 {
				seqOf[i] = uint64(i)
			}
			for i := 10; i < 90; i += 5 { // batches of 5
				var recs []trail.Record
				for k := range 5 {
					recs = append(recs, mkBigRec(i+k))
				}
				seqs, err := l.Append(ctx, recs...)
				if err != nil {
					t.Fatal(err)
				}
				for k, s := range seqs {
					seqOf[i+k] = s
				}
			}
			if n := db.count(`SELECT count(*) FROM {records} WHERE kind = 'trail.dictionary'`); n != 1 {
				t.Fatalf("%d dictionary records, want 1", n)
			}
			dictSeq := db.count(`SELECT seq FROM {records} WHERE kind = 'trail.dictionary'`)
			if h := db.count(`SELECT dict FROM {head}`); h != dictSeq {
				t.Fatalf("trail_head.dict %d, dictionary record %d", h, dictSeq)
			}
			if dictSeq != 15 { // 10 old + the 5 of the batch that fills the sample
				t.Errorf("dictionary at seq %d, want 15", dictSeq)
			}
			if n := db.count(`SELECT count(*) FROM {records} WHERE seq > $1 AND dict IS NULL`, dictSeq); n != 0 {
				t.Fatalf("%d records after the dictionary stored plain", n)
			}
			if n := db.count(`SELECT count(*) FROM {records} WHERE dict IS NOT NULL AND dict <> $1`, dictSeq); n != 0 {
				t.Fatalf("%d rows name another dictionary", n)
			}
			plain := db.count(`SELECT avg(length(body))::bigint FROM {records} WHERE seq < 10`)
			z := db.count(`SELECT avg(length(body))::bigint FROM {records} WHERE dict IS NOT NULL`)
			t.Logf("%s: plain rows %d bytes, compressed %d on average", mode, plain, z)
			if z*3 > plain {
				t.Errorf("compressed rows %d bytes on average, plain %d: want at least 3x smaller", z, plain)
			}

			// Read back: by seq, by id, by scan, through this log and a
			// fresh one (that reads the dictionary when it needs it).
			reader := db.open(Options{})
			for _, lg := range []*Log{l, reader} {
				for i, seq := range seqOf {
					if i%7 != 0 {
						continue
					}
					r, err := lg.Get(seq)
					if err != nil {
						t.Fatal(err)
					}
					sameRecord(t, r, i, seq)
					if r, err = lg.GetByID(ctx, fmt.Sprintf("d-%06d", i)); err != nil {
						t.Fatal(err)
					}
					sameRecord(t, r, i, seq)
				}
			}
			byID := map[string]trail.Record{}
			if err := reader.Scan(0, 1000, func(r trail.Record) error { byID[r.ID] = r; return nil }); err != nil {
				t.Fatal(err)
			}
			for i, seq := range seqOf {
				sameRecord(t, byID[fmt.Sprintf("d-%06d", i)], i, seq)
			}

			cp, err := l.Checkpoint()
			if err != nil {
				t.Fatal(err)
			}
			if rep := pgVerify(t, reader, vkey); !rep.OK || rep.To != 91 {
				t.Fatalf("verify: %+v", rep)
			}
			rec, _ := reader.Get(seqOf[60])
			p, err := reader.Prove(seqOf[60], cp)
			if err != nil {
				t.Fatal(err)
			}
			if err := trail.CheckProof(vkey, cp, rec, p); err != nil {
				t.Fatalf("proof of a compressed record: %v", err)
			}

			// A replica with compression off adds plain rows; all read.
			off := db.open(Options{Signer: signer})
			offSeqs := appendBig(t, off, 90, 3)
			if n := db.count(`SELECT count(*) FROM {records} WHERE seq >= $1 AND dict IS NOT NULL`, int64(offSeqs[0])); n != 0 {
				t.Fatalf("compression off stored %d compressed rows", n)
			}

			// Retention: plain and compressed decisions become tombstones,
			// the dictionary stays, the trail verifies.
			if _, err := l.Prune(ctx, trail.KindDictionary, epoch.Add(time.Hour)); !errors.Is(err, trail.ErrBadOption) {
				t.Fatalf("prune the dictionary: %v", err)
			}
			n, err := l.Prune(ctx, "decision", mkBigRec(50).Time)
			if err != nil || n != 50 {
				t.Fatalf("prune: %d %v, want 50", n, err)
			}
			if n := db.count(`SELECT count(*) FROM {records} WHERE pruned AND (body IS NOT NULL OR dict IS NOT NULL)`); n != 0 {
				t.Fatalf("%d tombstones keep a body or dictionary", n)
			}
			if n := db.count(`SELECT count(*) FROM {records} WHERE kind = 'trail.dictionary' AND NOT pruned`); n != 1 {
				t.Fatal("the dictionary was pruned")
			}
			if _, err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			if rep := pgVerify(t, off, vkey); !rep.OK || rep.Pruned != 50 {
				t.Fatalf("verify after prune: %+v", rep)
			}
			r, err := off.Get(seqOf[70])
			if err != nil {
				t.Fatal(err)
			}
			sameRecord(t, r, 70, seqOf[70])
		})
	}
}

// TestPostgresCompressionReplicasOneDictionary: replicas that each
// gathered a dictionary store one between them (the first to take the
// head lock); the other adopts it. Then many appends race through two
// replicas from a plain trail: one dictionary, and both compress.
func TestPostgresCompressionReplicasOneDictionary(t *testing.T) {
	t.Run("both prepared", func(t *testing.T) {
		db := newPGDB(t)
		opts := Options{Compression: trail.CompressionS2, DictionarySize: smallDict}
		a, b := db.open(opts), db.open(opts)
		appendBig(t, a, 0, 3) // a's sample is full: its dictionary waits for its next batch
		appendBig(t, b, 3, 3) // b's too: it saw no dictionary in the trail
		if n := db.count(`SELECT count(*) FROM {records} WHERE kind = 'trail.dictionary'`); n != 0 {
			t.Fatalf("%d dictionaries before either replica's next batch", n)
		}
		sa := appendBig(t, a, 6, 1) // a stores its dictionary (6), then the record
		sb := appendBig(t, b, 7, 1) // b finds it, drops its own
		if n := db.count(`SELECT count(*) FROM {records} WHERE kind = 'trail.dictionary'`); n != 1 {
			t.Fatalf("%d dictionaries, want 1", n)
		}
		if sa[0] != 7 || sb[0] != 8 {
			t.Fatalf("seqs %v %v, want 7 and 8 (dictionary at 6)", sa, sb)
		}
		if n := db.count(`SELECT count(*) FROM {records} WHERE seq IN (7, 8) AND dict = 6`); n != 2 {
			t.Fatalf("%d of records 7 and 8 compressed with dictionary 6", n)
		}
		if cb := b.cur.Load(); cb == nil || cb.seq != 6 {
			t.Fatalf("replica b compresses with %+v, want dictionary 6", cb)
		}
	})

	t.Run("racing appends", func(t *testing.T) {
		db := newPGDB(t)
		signer, vkey := newKeys(t)
		opts := Options{Signer: signer, Compression: trail.CompressionS2, DictionarySize: 4 * smallDict}
		logs := []*Log{db.open(opts), db.open(opts)}
		const workers, each = 16, 25
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				l := logs[w%2]
				for i := range each {
					if _, err := l.Append(context.Background(), mkBigRec(w*each+i)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		if n := db.count(`SELECT count(*) FROM {records} WHERE kind = 'trail.dictionary'`); n != 1 {
			t.Fatalf("%d dictionaries, want 1", n)
		}
		for i, l := range logs {
			seqs := appendBig(t, l, 1000+i, 1)
			if n := db.count(`SELECT count(*) FROM {records} WHERE seq = $1 AND dict IS NOT NULL`, int64(seqs[0])); n != 1 {
				t.Fatalf("replica %d stored its record after the race plain", i)
			}
		}
		if _, err := logs[1].Checkpoint(); err != nil {
			t.Fatal(err)
		}
		if rep := pgVerify(t, logs[0], vkey); !rep.OK || rep.To != workers*each+3 {
			t.Fatalf("verify: %+v", rep)
		}
		t.Logf("%d of %d records compressed", db.count(`SELECT count(*) FROM {records} WHERE dict IS NOT NULL`), workers*each+3)
	})
}

// TestPostgresCompressionMigratesOldSchema: a database made before the
// dict columns gains them at Open; its rows read and verify with the
// compressed ones after them.
func TestPostgresCompressionMigratesOldSchema(t *testing.T) {
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	l := db.open(Options{Signer: signer})
	appendBig(t, l, 0, 5)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	db.exec(`ALTER TABLE {records} DROP COLUMN dict`)
	db.exec(`ALTER TABLE {head} DROP COLUMN dict`)
	l = db.open(Options{Signer: signer, Compression: trail.CompressionZstd, DictionarySize: smallDict})
	appendBig(t, l, 5, 10)
	if n := db.count(`SELECT count(*) FROM {records} WHERE dict IS NOT NULL`); n == 0 {
		t.Fatal("nothing compressed after the migration")
	}
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if rep := pgVerify(t, l, vkey); !rep.OK || rep.To != 16 {
		t.Fatalf("verify: %+v", rep)
	}
	r, err := l.Get(2)
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, r, 2, 2)
}

// TestPostgresCompressionHeadNamesNoDictionary: when trail_head.dict names
// a record that is not a dictionary, a compressing replica's appends fail
// (ErrDictionary) rather than store rows nobody could read.
func TestPostgresCompressionHeadNamesNoDictionary(t *testing.T) {
	db := newPGDB(t)
	l := db.open(Options{Compression: trail.CompressionS2, DictionarySize: smallDict})
	appendBig(t, l, 0, 6)
	db.exec(`UPDATE {head} SET dict = 1`)
	_, err := l.Append(context.Background(), mkBigRec(6))
	if !errors.Is(err, trail.ErrDictionary) {
		t.Fatalf("append with a head naming record 1: %v, want ErrDictionary", err)
	}
	if _, err := l.Get(5); err != nil {
		t.Fatalf("reading is not affected: %v", err)
	}
	// At Open: a compressing replica refuses to start, a reader does not.
	_, err = Open(context.Background(), db.url, Options{Schema: db.schema, Compression: trail.CompressionS2})
	if !errors.Is(err, trail.ErrDictionary) {
		t.Fatalf("open a compressing replica: %v, want ErrDictionary", err)
	}
	db.open(Options{})
}

// TestPostgresCompressionReadsDictionaryAtOpen: a replica opened on a
// trail that has its dictionary compresses from its first append.
func TestPostgresCompressionReadsDictionaryAtOpen(t *testing.T) {
	db := newPGDB(t)
	opts := Options{Compression: trail.CompressionS2, DictionarySize: smallDict}
	appendBig(t, db.open(opts), 0, 5) // dictionary at 3
	l := db.open(opts)
	if d := l.cur.Load(); d == nil || d.seq != 3 {
		t.Fatalf("after Open the replica compresses with %+v, want dictionary 3", d)
	}
	seqs := appendBig(t, l, 5, 1)
	if n := db.count(`SELECT count(*) FROM {records} WHERE seq = $1 AND dict = 3`, int64(seqs[0])); n != 1 {
		t.Fatal("the first append after Open is not compressed")
	}
}

// mkNorthbankish is a decision record of about 2 KB (like a Northbank
// decision: over PostgreSQL's TOAST threshold, so that with compression
// off the server compresses it with pglz).
func mkNorthbankish(i int) trail.Record {
	r := mkBigRec(i)
	body := r.Body[:len(r.Body)-1]
	body = append(body, `,"entities":[`...)
	for k := range 8 {
		if k > 0 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, `{"uid":{"type":"account","id":"acc-%d-%d"},"attrs":{"owner":"user-%d","currency":"EUR","status":"active","opened":"2024-0%d-15"},"parents":[]}`,
			i%11, k, (i+k)%17, 1+k)
	}
	r.Body = append(body, "]}"...)
	return r
}
