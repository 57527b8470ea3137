package pgtrail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ciampdp/pdp/pdp/trail"
)

// pgSnapshot is the whole trail as one repeatable-read transaction sees it.
type pgSnapshot struct {
	head      int64
	cps       []pgCheckpoint
	frames    []trail.Frame          // position i: the i-th record in seq order
	issues    map[uint64]trail.Issue // lesser problems of a record, by position
	hashes    []tlog.Hash            // stored hashes of a tree of head records
	have      []bool                 // hashes[i] was read
	claimed   []bool                 // by seq: a row's hashes were taken for it
	upOK      []bool                 // by seq: from a row with a well-formed up column
	hashRows  int64                  // stored hashes the rows of the tree hold
	badRows   int64                  // rows of the tree whose up column has the wrong length
	strayRows int64                  // rows in trail_hashes (empty since layout 1), or beyond the tree (legacy)
	legacy    bool                   // the layout before 1: stored hashes in trail_hashes
	rooted    bool                   // trail_head has rootedConstraint (headroot.go)
	rootSize  pgtype.Int8            // the size of the tree the head keeps the root of (headroot.go)
	root      []byte
}

// Verify re-reads the shared trail in one snapshot and checks records with
// from <= seq < to, like trail.FileLog.Verify (both use
// trail.VerifyEvidence): every checkpoint's signature under verifierKey
// and origin, that each checkpoint's root is the tree of the records it
// covers, that successive checkpoints are consistent, and each record's
// leaf hash (recomputed from its canonical bytes; a tombstone's is the leaf
// it keeps) and position. The report names the first bad record.
// Positions are the records in seq order, so a deleted row shows as a gap
// (dropped), rows given other numbers as inserted or reordered. Beyond
// the file log it checks that each checkpoint is filed under its size, that
// the records match the head row's size, that the kind, id and time columns
// agree with the canonical bytes, that the leaf and up columns hold
// exactly the tree's stored hashes (and trail_hashes none), and that the
// records hash to the root the head row keeps (headroot.go: the only check
// of the newest records beyond their own rows until a checkpoint covers
// them).
//
// A tombstone cannot be told from a record whose body someone deleted and
// marked pruned: both keep the leaf, and the tree still verifies.
//
// Verify holds the leaf and stored hashes of the whole trail in memory
// (about 270 bytes per record, with the tree it recomputes to check them).
func (l *Log) Verify(ctx context.Context, verifierKey string, from, to uint64) (trail.Report, error) {
	if _, err := trail.Verifiers(verifierKey); err != nil {
		return trail.Report{}, err
	}
	if l.closed.Load() {
		return trail.Report{}, trail.ErrClosed
	}
	var s pgSnapshot
	if err := l.readTx(ctx, func(tx pgx.Tx, lay layout) error { return s.load(ctx, tx, l.sql, lay) }); err != nil {
		return trail.Report{}, fmt.Errorf("trail: verify: %w", err)
	}
	signed := make([][]byte, len(s.cps))
	for i, c := range s.cps {
		signed[i] = c.signed
	}
	rep, err := trail.VerifyEvidence(verifierKey, trail.Evidence{
		Origin:      l.opts.Origin,
		Checkpoints: signed,
		CheckHead: func(i int, h trail.TreeHead) error {
			if h.Size != uint64(s.cps[i].size) {
				return fmt.Errorf("signed for size %d, stored as size %d", h.Size, s.cps[i].size)
			}
			return nil
		},
		Frames:        s.frames,
		Stored:        s.hashes,
		Have:          s.have,
		StoredDiffers: "the record matches the signed checkpoints but its leaf column differs",
		Issues:        s.issues,
	}, from, to)
	if err != nil || !rep.OK {
		return rep, err
	}

	// The head row, the records and the stored hashes must agree.
	n, head, to := uint64(len(s.frames)), uint64(s.head), rep.To
	switch {
	case n < head && n >= rep.From && n <= to:
		return rep.Fail(trail.Dropped, n, fmt.Sprintf("the tree head says %d records, the trail holds %d", head, n)), nil
	case n > head && head >= rep.From && head < to:
		return rep.Fail(trail.Inserted, head, fmt.Sprintf("%d records beyond the tree head of %d", n-head, head)), nil
	case to == n && s.legacy && (s.hashRows != int64(len(s.hashes)) || s.strayRows > 0):
		return rep.Fail(trail.StoredHashes, head, fmt.Sprintf("trail_hashes holds %d of the %d stored hashes of the tree, and %d rows beyond it",
			s.hashRows, len(s.hashes), s.strayRows)), nil
	case to == n && (s.hashRows != int64(len(s.hashes)) || s.badRows > 0 || s.strayRows > 0):
		return rep.Fail(trail.StoredHashes, head, fmt.Sprintf("the leaf and up columns hold %d of the %d stored hashes of the tree "+
			"(%d rows with an up column of the wrong length), and trail_hashes %d rows (none expected)",
			s.hashRows, len(s.hashes), s.badRows, s.strayRows)), nil
	case to == n && n == head:
		tree, seq, level, bad := s.wrongInterior()
		if bad {
			return rep.Fail(trail.StoredHashes, uint64(seq), fmt.Sprintf("the records verify, but the stored hash of level %d "+
				"kept for record %d differs from their tree (inclusion proofs through it would fail)", level, seq)), nil
		}
		return s.checkRoot(rep, tree), nil
	}
	return rep, nil
}

// load reads the head, the checkpoints, the records and the stored hashes.
func (s *pgSnapshot) load(ctx context.Context, tx pgx.Tx, q pgSQL, lay layout) error {
	s.legacy, s.rooted = lay.legacy, lay.rooted
	headSQL, recordsSQL := q.headRoot, q.allRecords
	if !lay.hasRoot {
		headSQL = q.headNoRoot
	}
	if !lay.up {
		recordsSQL = q.allRecordsNoUp
	}
	if err := tx.QueryRow(ctx, headSQL).Scan(&s.head, &s.rootSize, &s.root); err != nil {
		return fmt.Errorf("read head: %w", err)
	}
	var err error
	if s.cps, err = readCheckpoints(ctx, tx, q.checkpoints); err != nil {
		return err
	}

	limit := tlog.StoredHashCount(s.head)
	s.hashes, s.have = make([]tlog.Hash, limit), make([]bool, limit)
	s.claimed, s.upOK = make([]bool, s.head), make([]bool, s.head)
	if s.legacy {
		if err := s.loadLegacyHashes(ctx, tx, q); err != nil {
			return err
		}
	} else if err := tx.QueryRow(ctx, q.strayHashes).Scan(&s.strayRows); err != nil {
		return fmt.Errorf("read trail_hashes: %w", err)
	}

	rows, err := tx.Query(ctx, recordsSQL)
	if err != nil {
		return fmt.Errorf("read records: %w", err)
	}
	s.issues = map[uint64]trail.Issue{}
	// The dictionaries of this snapshot, met in seq order: a compressed
	// row names one before it.
	dicts := map[int64]*trail.Dictionary{}
	dict := func(seq int64) (*trail.Dictionary, error) {
		if d := dicts[seq]; d != nil {
			return d, nil
		}
		return nil, fmt.Errorf("%w: it is not a well-formed dictionary record before this one", trail.ErrDictionary)
	}
	var r pgRow
	if _, err := pgx.ForEachRow(rows, r.dest(), func() error {
		i := uint64(len(s.frames))
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		f, issue := r.frame(dict)
		if issue != nil {
			s.issues[i] = *issue
		}
		if r.kind == trail.KindDictionary && !r.pruned && !r.dict.Valid {
			if d, err := openDictionaryRow(&r, false); err == nil {
				dicts[r.seq] = d
			}
		}
		s.frames = append(s.frames, f)
		if !s.legacy {
			s.storedHashes(&r, f)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("read records: %w", err)
	}
	if !s.legacy {
		s.checkPairs()
	}
	return nil
}

// frame is what Verify learns about a row: its leaf hash and own sequence
// number, and a lesser problem of its columns if it has one. dict returns
// the dictionaries compressed rows name.
func (r *pgRow) frame(dict func(seq int64) (*trail.Dictionary, error)) (trail.Frame, *trail.Issue) {
	f := trail.Frame{Seq: -1}
	if r.pruned {
		f.Seq, f.Pruned = r.seq, true
		if len(r.leaf) != tlog.HashSize {
			f.Bad = fmt.Errorf("tombstone with a malformed leaf hash (%d bytes)", len(r.leaf))
			return f, nil
		}
		f.Leaf = tlog.Hash(r.leaf)
		return f, nil
	}
	if r.body == nil {
		f.Bad = errors.New("record without a body that is not a tombstone")
		return f, nil
	}
	canon, err := r.canonical(dict)
	if err != nil {
		f.Seq, f.Bad = r.seq, fmt.Errorf("compressed record: %w", err)
		return f, nil
	}
	f.Leaf = tlog.RecordHash(canon)
	var c struct {
		Seq  *uint64   `json:"seq"`
		Kind string    `json:"kind"`
		ID   string    `json:"id"`
		Time time.Time `json:"time"`
	}
	if json.Unmarshal(canon, &c) != nil || c.Seq == nil || *c.Seq > math.MaxInt64 {
		return f, nil // seq -1: unreadable
	}
	f.Seq = int64(*c.Seq)
	if d := r.time.Sub(c.Time); r.seq != f.Seq || r.kind != c.Kind || r.id != c.ID || d <= -time.Microsecond || d >= time.Microsecond {
		return f, &trail.Issue{Problem: trail.Changed, Detail: fmt.Sprintf("the seq, kind, id or time column (%d, %q, %q, %s) differs from the record's canonical bytes",
			r.seq, r.kind, r.id, r.time.UTC().Format(time.RFC3339Nano))}
	}
	if !bytes.Equal(r.leaf, f.Leaf[:]) {
		return f, &trail.Issue{Problem: trail.StoredHashes, Detail: "the record matches its stored hash but its leaf column differs"}
	}
	return f, nil
}
