package pgtrail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// The head cut consistently: records deleted (or not) and trail_head's
// size, root_size and root set to the shorter tree, which the constraint
// on trail_head lets through. A running replica has seen the longer tree
// (it answered callers with those sequence numbers): it must not reuse
// them, nor sign the cut tree. And a head row deleted (the DDL inserts
// one of size 0 again) must not pass for a new trail at the next start.

// rootOf is the root of the tree of records mkRec(0..n-1) as written.
func rootOf(t *testing.T, n int) []byte {
	t.Helper()
	_, root := forgedTree(t, n, -1)
	return root[:]
}

// cutHead sets the head to the tree of the first n records, consistently.
func cutHead(t *testing.T, db pgDB, n int) {
	t.Helper()
	db.exec(`UPDATE {head} SET size = $1, root_size = $1, root = $2`, n, rootOf(t, n))
}

// TestPostgresCutHeadUnderRunningReplica: a replica that has seen the
// trail of 13 records fails closed (ErrDamaged, naming both sizes) on its
// next append and checkpoint once the head says fewer, whether the rows
// after it were deleted or not; it writes nothing. Verify cannot tell a
// consistent cut with the rows deleted from a shorter trail (the limit
// the running replica covers), and names rows kept beyond the head.
func TestPostgresCutHeadUnderRunningReplica(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, db pgDB)
		head   int // the head after the tampering
		// verifyOK: nothing in the tables tells (only this replica did).
		verifyOK bool
		problem  trail.Problem
		seq      uint64
	}{
		{
			name: "records after the checkpoint deleted, head cut to the checkpoint",
			tamper: func(t *testing.T, db pgDB) {
				db.exec(`DELETE FROM {records} WHERE seq >= 10`)
				cutHead(t, db, 10)
			},
			head: 10, verifyOK: true,
		},
		{
			name: "last two records deleted, head cut between checkpoints",
			tamper: func(t *testing.T, db pgDB) {
				db.exec(`DELETE FROM {records} WHERE seq >= 11`)
				cutHead(t, db, 11)
			},
			head: 11, verifyOK: true,
		},
		{
			name: "head cut, rows kept",
			tamper: func(t *testing.T, db pgDB) {
				cutHead(t, db, 11)
			},
			head: 11, problem: trail.Inserted, seq: 11,
		},
		{
			name: "everything deleted, head cut to 0",
			tamper: func(t *testing.T, db pgDB) {
				db.exec(`DELETE FROM {records}`)
				db.exec(`DELETE FROM {checkpoints}`)
				cutHead(t, db, 0)
			},
			head: 0, verifyOK: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, signer, vkey := rootTrail(t)
			l := db.open(Options{Signer: signer, VerifierKey: vkey})
			defer l.Close()
			if l.Size() != 13 {
				t.Fatalf("size seen at open: %d, want 13", l.Size())
			}
			cps := db.count(`SELECT count(*) FROM {checkpoints}`)
			tc.tamper(t, db)
			cpsCut := db.count(`SELECT count(*) FROM {checkpoints}`)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for i := range 2 { // and stays closed
				seqs, err := l.Append(ctx, mkRec(13+i))
				if !errors.Is(err, trail.ErrDamaged) || !strings.Contains(err.Error(), "records were cut") {
					t.Fatalf("append %d after the cut: %v %v, want ErrDamaged (records were cut)", i, seqs, err)
				}
			}
			_, err := l.Checkpoint()
			if !errors.Is(err, trail.ErrDamaged) {
				t.Fatalf("checkpoint after the cut: %v, want ErrDamaged", err)
			}
			t.Logf("%v", err)
			if n := db.count(`SELECT size FROM {head}`); n != int64(tc.head) {
				t.Fatalf("head after the refused writes: %d, want %d", n, tc.head)
			}
			if got := db.count(`SELECT count(*) FROM {checkpoints}`); got != cpsCut {
				t.Fatalf("checkpoints after the refused checkpoint: %d, want %d (%d before the cut)", got, cpsCut, cps)
			}
			rep := pgVerify(t, db.open(Options{NoMigrate: true}), vkey)
			switch {
			case tc.verifyOK && (!rep.OK || rep.To != uint64(tc.head)):
				t.Fatalf("verify: %v, want ok to %d (a consistent cut: the limit)", rep, tc.head)
			case !tc.verifyOK && (rep.OK || rep.Problem != tc.problem || rep.Seq != tc.seq):
				t.Fatalf("verify: %v, want %s at %d", rep, tc.problem, tc.seq)
			}
		})
	}
}

// TestPostgresAppendOverPlantedRow: a row planted at the sequence number
// the head gives next makes the running replica's append fail closed with
// ErrDamaged (not a bare duplicate key), writing nothing.
func TestPostgresAppendOverPlantedRow(t *testing.T) {
	db, signer, vkey := rootTrail(t)
	l := db.open(Options{Signer: signer, VerifierKey: vkey})
	defer l.Close()
	body, leaf := canonicalAt(13, 13)
	db.exec(`INSERT INTO {records} (seq, kind, id, time, body, leaf) VALUES (13, 'decision', $1, $2, $3, $4)`,
		mkRec(13).ID, mkRec(13).Time, body, leaf)
	_, err := l.Append(context.Background(), mkRec(14))
	if !errors.Is(err, trail.ErrDamaged) || !strings.Contains(err.Error(), "beyond the tree head of 13") {
		t.Fatalf("append over a planted row: %v, want ErrDamaged (beyond the tree head of 13)", err)
	}
	if n := db.count(`SELECT size FROM {head}`); n != 13 {
		t.Fatalf("head: %d, want 13", n)
	}
	if rep := pgVerify(t, l, vkey); rep.OK || rep.Problem != trail.Inserted || rep.Seq != 13 {
		t.Fatalf("verify: %v, want inserted at 13", rep)
	}
}

// TestPostgresHeadBehindRowsAtStart: a start refuses a head that records
// or checkpoints lie beyond, with ErrDamaged naming them, instead of
// taking it for a new (or shorter) trail: the head row deleted while the
// root constraint was dropped (the DDL inserts size 0 again, and the
// upgrade step would give it the empty tree's root), or cut with the
// constraint kept. The upgrade step adds nothing then, and Verify names
// the trail too. A trail emptied whole is a new trail.
func TestPostgresHeadBehindRowsAtStart(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(t *testing.T, db pgDB)
		names   string // in the start's error
		problem trail.Problem
		seq     uint64
		rooted  bool // the constraint, after the start
		newOK   bool // a new trail: the start succeeds
	}{
		{
			name: "constraint dropped, head row deleted",
			tamper: func(_ *testing.T, db pgDB) {
				db.exec(dropRooted)
				db.exec(`DELETE FROM {head}`)
			},
			names: "trail_records holds record 12", problem: trail.Inserted, seq: 0,
		},
		{
			name: "constraint dropped, head row and records deleted",
			tamper: func(_ *testing.T, db pgDB) {
				db.exec(dropRooted)
				db.exec(`DELETE FROM {head}`)
				db.exec(`DELETE FROM {records}`)
			},
			names: "trail_checkpoints holds a checkpoint of 10", problem: trail.Dropped, seq: 0,
		},
		{
			name: "constraint dropped, head row deleted, records after the checkpoint deleted",
			tamper: func(_ *testing.T, db pgDB) {
				db.exec(dropRooted)
				db.exec(`DELETE FROM {head}`)
				db.exec(`DELETE FROM {records} WHERE seq >= 10`)
			},
			names: "trail_records holds record 9", problem: trail.Inserted, seq: 0,
		},
		{
			name:   "constraint kept, head cut to the empty tree, rows kept",
			tamper: func(t *testing.T, db pgDB) { cutHead(t, db, 0) },
			names:  "trail_records holds record 12", problem: trail.Inserted, seq: 0, rooted: true,
		},
		{
			name:   "constraint kept, head cut, rows kept",
			tamper: func(t *testing.T, db pgDB) { cutHead(t, db, 11) },
			names:  "trail_records holds record 12", problem: trail.Inserted, seq: 11, rooted: true,
		},
		{
			name: "constraint dropped, everything deleted",
			tamper: func(_ *testing.T, db pgDB) {
				db.exec(dropRooted)
				db.exec(`DELETE FROM {head}`)
				db.exec(`DELETE FROM {records}`)
				db.exec(`DELETE FROM {checkpoints}`)
			},
			newOK: true, rooted: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, signer, vkey := rootTrail(t)
			tc.tamper(t, db)
			var logs bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			l, err := Open(ctx, db.url, Options{Schema: db.schema, Signer: signer,
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			rooted := db.count(`SELECT count(*) FROM pg_constraint WHERE conrelid = '{head}'::regclass AND conname = '`+rootedConstraint+`'`) == 1
			if rooted != tc.rooted {
				t.Fatalf("constraint after the start: %v, want %v", rooted, tc.rooted)
			}
			if tc.newOK {
				if err != nil {
					t.Fatalf("start on an emptied trail: %v", err)
				}
				defer l.Close()
				if strings.Contains(logs.String(), "level=WARN") {
					t.Fatalf("a new trail warned: %s", logs.String())
				}
				pgAppendN(t, l, 0, 2)
				if rep := pgVerify(t, l, vkey); !rep.OK || rep.To != 2 {
					t.Fatalf("verify: %v", rep)
				}
				return
			}
			if !errors.Is(err, trail.ErrDamaged) || !strings.Contains(err.Error(), tc.names) {
				t.Fatalf("start: %v, want ErrDamaged naming %q", err, tc.names)
			}
			t.Logf("%v", err)
			rep := pgVerify(t, db.open(Options{NoMigrate: true}), vkey)
			if rep.OK || rep.Problem != tc.problem || rep.Seq != tc.seq {
				t.Fatalf("verify: %v, want %s at %d", rep, tc.problem, tc.seq)
			}
			t.Logf("verify: %v", rep)
		})
	}
}

// TestPostgresRewriteWithLeafCaughtAtTip pins what the README says of a
// record rewritten with its leaf column: an append or checkpoint reads only
// the stored hashes of the complete subtrees at the tip, which hold a
// record's own leaf only for the newest record of a tree of odd size, and
// only from its row for a replica that did not write that tip itself (the
// one that did keeps those hashes in memory). Otherwise they succeed on
// the tree the root is of: the new root is built on the hashes as they
// were written, so nothing is laundered, and Verify names the record.
func TestPostgresRewriteWithLeafCaughtAtTip(t *testing.T) {
	tests := []struct {
		name    string
		size    int  // records before the rewrite
		seq     int  // the record rewritten
		writer  bool // the replica that appended the tip appends next
		refused bool
	}{
		{name: "newest of an odd tree, another replica", size: 15, seq: 14, refused: true},
		{name: "newest of an odd tree, its writer", size: 15, seq: 14, writer: true},
		{name: "newest of an even tree", size: 14, seq: 13},
		{name: "second newest of an odd tree", size: 15, seq: 13},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, signer, vkey := rootTrail(t)
			w := db.open(Options{})
			pgAppendN(t, w, 13, tc.size-13)
			l := w
			if !tc.writer {
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				l = db.open(Options{Signer: signer})
			}
			defer l.Close()
			rewriteRecord(db, tc.seq)
			_, err := l.Append(context.Background(), mkRec(tc.size))
			if tc.refused != errors.Is(err, trail.ErrDamaged) || !tc.refused && err != nil {
				t.Fatalf("append after the rewrite: %v (refusal expected: %v)", err, tc.refused)
			}
			rep := pgVerify(t, db.open(Options{NoMigrate: true}), vkey)
			if rep.OK || rep.Problem != trail.Changed || rep.Seq < 10 || rep.Seq > uint64(tc.seq) {
				t.Fatalf("verify: %v, want changed in [10,%d] (after the checkpoint)", rep, tc.seq)
			}
			t.Logf("verify: %v", rep)
		})
	}
}

// TestPostgresCutAndRewrittenUnderRunningReplica: the records a running
// replica appended are cut and other records appended in their place by a
// replica started after the cut, up to or past the size the first one
// saw, so the size alone no longer tells. The first replica's next append
// and checkpoint fail closed: the trail's tree no longer extends the tree
// it appended (or, at the same size, no longer hashes to the root at the
// tip it keeps in memory).
func TestPostgresCutAndRewrittenUnderRunningReplica(t *testing.T) {
	tests := []struct {
		name  string
		again int // records the other replica appends after the cut to 10
		want  string
	}{
		{name: "written again past what it saw", again: 6, want: "records were cut and written again"},
		{name: "written again to what it saw", again: 4, want: "do not hash to the root"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, signer, vkey := rootTrail(t)
			l := db.open(Options{Signer: signer, VerifierKey: vkey})
			defer l.Close()
			pgAppendN(t, l, 13, 1) // the tree of 14 records l appended
			db.exec(`DELETE FROM {records} WHERE seq >= 10`)
			cutHead(t, db, 10)
			other := db.open(Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for i := range tc.again {
				if _, err := other.Append(ctx, mkRec(50+i)); err != nil {
					t.Fatalf("the other replica's append %d: %v", i, err)
				}
			}
			if err := other.Close(); err != nil {
				t.Fatal(err)
			}
			head := db.count(`SELECT size FROM {head}`)
			if _, err := l.Append(ctx, mkRec(14)); !errors.Is(err, trail.ErrDamaged) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("append: %v, want ErrDamaged (%s)", err, tc.want)
			} else {
				t.Logf("append: %v", err)
			}
			if _, err := l.Checkpoint(); !errors.Is(err, trail.ErrDamaged) {
				t.Fatalf("checkpoint: %v, want ErrDamaged", err)
			}
			if n := db.count(`SELECT size FROM {head}`); n != head {
				t.Fatalf("head after the refused append: %d, want %d", n, head)
			}
			if n := db.count(`SELECT count(*) FROM {checkpoints} WHERE size > 10`); n != 0 {
				t.Fatalf("%d checkpoints over the rewritten records", n)
			}
		})
	}
}

// TestPostgresCutCheckRacesNoFalseAlarm: appends of two replicas and
// checkpoints of both, all at once (a checkpoint reads the head while its
// own replica commits): no append or checkpoint takes the growing trail
// for a cut one, and the trail verifies.
func TestPostgresCutCheckRacesNoFalseAlarm(t *testing.T) {
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	logs := []*Log{db.open(Options{Signer: signer, VerifierKey: vkey}), db.open(Options{Signer: signer, VerifierKey: vkey})}
	const writers, each = 3, 40
	errs := make(chan error, 2*writers*each+2*1000)
	var wg, cps sync.WaitGroup
	stop := make(chan struct{})
	for _, l := range logs {
		cps.Add(1)
		go func() {
			defer cps.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := l.Checkpoint(); err != nil {
					errs <- fmt.Errorf("checkpoint: %w", err)
					return
				}
			}
		}()
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if _, err := l.Append(context.Background(), mkRec(w*each+i)); err != nil {
						errs <- fmt.Errorf("append: %w", err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(stop)
	cps.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, l := range logs {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if rep := pgVerify(t, db.open(Options{NoMigrate: true}), vkey); !rep.OK || rep.To != 2*writers*each {
		t.Fatalf("verify: %v", rep)
	}
}
