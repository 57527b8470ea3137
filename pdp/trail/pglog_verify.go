package trail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// pgSnapshot is the whole trail as one repeatable-read transaction sees it.
type pgSnapshot struct {
	head      int64
	cps       []pgCheckpoint
	frames    []frameInfo        // position i: the i-th record in seq order
	issues    map[uint64]pgIssue // lesser problems of a record, by position
	hashes    memHashes          // stored hashes of a tree of head records
	have      []bool             // hashes[i] was read
	hashRows  int64              // rows of trail_hashes with an index in range
	strayRows int64              // rows of trail_hashes beyond the tree
}

// pgIssue is a problem of a record whose hash and position are right: its
// index columns or its leaf column were edited.
type pgIssue struct {
	problem Problem
	detail  string
}

// Verify re-reads the shared trail in one snapshot and checks records with
// from <= seq < to, like FileLog.Verify: every checkpoint's signature under
// verifierKey and origin, that each checkpoint's root is the tree of the
// records it covers, that successive checkpoints are consistent, and each
// record's leaf hash (recomputed from its canonical bytes; a tombstone's is
// the leaf it keeps) and position. The report names the first bad record.
// Positions are the records in seq order, so a deleted row shows as a gap
// (dropped), rows given other numbers as inserted or reordered. Beyond
// FileLog it checks that the records match the head row's size, that the
// kind, id and time columns agree with the canonical bytes, and that
// trail_hashes holds exactly the tree's stored hashes.
//
// A tombstone cannot be told from a record whose body someone deleted and
// marked pruned: both keep the leaf, and the tree still verifies.
//
// Verify holds the leaf and stored hashes of the whole trail in memory
// (about 200 bytes per record).
func (l *PostgresLog) Verify(ctx context.Context, verifierKey string, from, to uint64) (Report, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Report{}, fmt.Errorf("trail: verifier key: %w", err)
	}
	if l.closed.Load() {
		return Report{}, ErrClosed
	}
	var s pgSnapshot
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	if err := pgx.BeginTxFunc(ctx, l.pool, opts, func(tx pgx.Tx) error { return s.load(ctx, tx, l.sql) }); err != nil {
		return Report{}, fmt.Errorf("trail: verify: %w", err)
	}

	// Checkpoints: signature, text, and the size they are filed under.
	var heads []TreeHead
	for i, c := range s.cps {
		n, err := note.Open(c.signed, note.VerifierList(v))
		var h TreeHead
		if err == nil {
			h, err = parseTreeHead(n.Text)
		}
		if err == nil && h.Origin != l.opts.Origin {
			err = fmt.Errorf("origin %q, want %q", h.Origin, l.opts.Origin)
		}
		if err == nil && h.Size != uint64(c.size) {
			err = fmt.Errorf("signed for size %d, stored as size %d", h.Size, c.size)
		}
		if err != nil {
			return Report{Problem: BadCheckpoint, Seq: sizeOf(c.signed), Detail: fmt.Sprintf("checkpoint %d: %v", i, err)}, nil
		}
		heads = append(heads, h)
	}

	frames := s.frames
	var tree memTree
	for _, f := range frames {
		if err := tree.add(f.leaf); err != nil {
			return Report{}, err
		}
	}
	n := uint64(len(frames))
	to = min(to, n)
	rep := Report{From: from, To: to, Checkpoints: len(heads)}
	if len(heads) > 0 {
		rep.Anchored = heads[len(heads)-1].Size
	}
	rep.Unanchored = n - min(rep.Anchored, n)
	if from > to {
		rep.From = to
	}

	// From here on, as FileLog.Verify, with trail_hashes for the side file.
	for i := 1; i < len(heads); i++ {
		a, b := heads[i-1], heads[i]
		if err := checkConsistency(a, b, s.hashes, tree.hashes); err != nil {
			return Report{Problem: BadCheckpoint, Seq: b.Size, Detail: fmt.Sprintf("checkpoint %d (size %d) does not extend checkpoint %d (size %d): %v", i, b.Size, i-1, a.Size, err)}, nil
		}
	}
	var authentic uint64
	for i := len(heads) - 1; i >= 0; i-- {
		if root, err := tlog.TreeHash(int64(heads[i].Size), s.hashes); err == nil && root == heads[i].Root {
			authentic = heads[i].Size
			break
		}
	}
	stored := func(i uint64) (tlog.Hash, bool) {
		idx := tlog.StoredHashIndex(0, int64(i))
		if idx >= int64(len(s.hashes)) || !s.have[idx] {
			return tlog.Hash{}, false
		}
		return s.hashes[idx], true
	}
	var proven uint64
	failing := -1
	for i, h := range heads {
		if h.Size > n {
			failing = i
			break
		}
		root, err := tlog.TreeHash(int64(h.Size), tree.hashes)
		if err != nil {
			return Report{}, err
		}
		if root != h.Root {
			failing = i
			break
		}
		proven = h.Size
	}

	issue := int64(-1) // first record in range with a lesser problem
	for i := rep.From; i < to; i++ {
		f := frames[i]
		if f.bad != nil {
			return rep.fail(Changed, i, f.bad.Error()), nil
		}
		if want, ok := stored(i); ok && want != f.leaf {
			if i < proven {
				return rep.fail(StoredHashes, i, "the record matches the signed checkpoints but its stored hash in trail_hashes differs"), nil
			}
			p, detail := classifyByHash(i, frames, stored, authentic)
			return rep.fail(p, i, detail), nil
		}
		if f.seq != int64(i) {
			p, detail := classifyBySeq(i, frames)
			return rep.fail(p, i, detail), nil
		}
		if _, ok := s.issues[i]; ok && issue < 0 {
			issue = int64(i)
		}
	}

	if failing >= 0 {
		h := heads[failing]
		switch {
		case h.Size > n && n >= rep.From && n <= to:
			return rep.fail(Dropped, n, fmt.Sprintf("checkpoint %d covers %d records, the trail holds %d", failing, h.Size, n)), nil
		case h.Size <= n && proven < to && h.Size > rep.From:
			hint := ""
			if issue >= int64(proven) && issue < int64(h.Size) {
				hint = fmt.Sprintf("; record %d: %s", issue, s.issues[uint64(issue)].detail)
			}
			return rep.fail(Changed, max(proven, rep.From), fmt.Sprintf("a record in [%d,%d) differs from checkpoint %d (stored hashes do not pinpoint it)%s", proven, h.Size, failing, hint)), nil
		}
	}
	// Lesser problems: records whose hash and position are right, with an
	// edited index or leaf column.
	if issue >= 0 {
		is := s.issues[uint64(issue)]
		return rep.fail(is.problem, uint64(issue), is.detail), nil
	}

	// The head row, the records and the stored hashes must agree.
	head := uint64(s.head)
	switch {
	case n < head && n >= rep.From && n <= to:
		return rep.fail(Dropped, n, fmt.Sprintf("the tree head says %d records, the trail holds %d", head, n)), nil
	case n > head && head >= rep.From && head < to:
		return rep.fail(Inserted, head, fmt.Sprintf("%d records beyond the tree head of %d", n-head, head)), nil
	case to == n && (s.hashRows != int64(len(s.hashes)) || s.strayRows > 0):
		return rep.fail(StoredHashes, head, fmt.Sprintf("trail_hashes holds %d of the %d stored hashes of the tree, and %d rows beyond it",
			s.hashRows, len(s.hashes), s.strayRows)), nil
	}
	rep.OK = true
	return rep, nil
}

// load reads the head, the checkpoints, the records and the stored hashes.
func (s *pgSnapshot) load(ctx context.Context, tx pgx.Tx, q pgSQL) error {
	if err := tx.QueryRow(ctx, q.size).Scan(&s.head); err != nil {
		return fmt.Errorf("read head: %w", err)
	}
	var err error
	if s.cps, err = readCheckpoints(ctx, tx, q.checkpoints); err != nil {
		return err
	}

	rows, err := tx.Query(ctx, q.allRecords)
	if err != nil {
		return fmt.Errorf("read records: %w", err)
	}
	s.issues = map[uint64]pgIssue{}
	var r pgRow
	if _, err := pgx.ForEachRow(rows, r.dest(), func() error {
		i := uint64(len(s.frames))
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		f, issue := r.frame()
		if issue != nil {
			s.issues[i] = *issue
		}
		s.frames = append(s.frames, f)
		return nil
	}); err != nil {
		return fmt.Errorf("read records: %w", err)
	}

	limit := tlog.StoredHashCount(s.head)
	s.hashes, s.have = make(memHashes, limit), make([]bool, limit)
	rows, err = tx.Query(ctx, q.allHashes)
	if err != nil {
		return fmt.Errorf("read stored hashes: %w", err)
	}
	var idx int64
	var raw []byte
	if _, err := pgx.ForEachRow(rows, []any{&idx, &raw}, func() error {
		if idx < 0 || idx >= limit || len(raw) != tlog.HashSize {
			s.strayRows++
			return nil
		}
		s.hashes[idx], s.have[idx] = tlog.Hash(raw), true
		s.hashRows++
		return nil
	}); err != nil {
		return fmt.Errorf("read stored hashes: %w", err)
	}
	return nil
}

// frame is what Verify learns about a row: its leaf hash and own sequence
// number, and a lesser problem of its columns if it has one.
func (r *pgRow) frame() (frameInfo, *pgIssue) {
	f := frameInfo{seq: -1}
	if r.pruned {
		f.seq = r.seq
		if len(r.leaf) != tlog.HashSize {
			f.bad = fmt.Errorf("tombstone with a malformed leaf hash (%d bytes)", len(r.leaf))
			return f, nil
		}
		f.leaf = tlog.Hash(r.leaf)
		return f, nil
	}
	if r.body == nil {
		f.bad = errors.New("record without a body that is not a tombstone")
		return f, nil
	}
	f.leaf = tlog.RecordHash(r.body)
	var c struct {
		Seq  *uint64   `json:"seq"`
		Kind string    `json:"kind"`
		ID   string    `json:"id"`
		Time time.Time `json:"time"`
	}
	if json.Unmarshal(r.body, &c) != nil || c.Seq == nil || *c.Seq > math.MaxInt64 {
		return f, nil // seq -1: unreadable
	}
	f.seq = int64(*c.Seq)
	if d := r.time.Sub(c.Time); r.seq != f.seq || r.kind != c.Kind || r.id != c.ID || d <= -time.Microsecond || d >= time.Microsecond {
		return f, &pgIssue{Changed, fmt.Sprintf("the seq, kind, id or time column (%d, %q, %q, %s) differs from the record's canonical bytes",
			r.seq, r.kind, r.id, r.time.UTC().Format(time.RFC3339Nano))}
	}
	if !bytes.Equal(r.leaf, f.leaf[:]) {
		return f, &pgIssue{StoredHashes, "the record matches its stored hash but its leaf column differs"}
	}
	return f, nil
}
