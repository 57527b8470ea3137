package pgtrail

import (
	"bytes"
	"context"
	"encoding/base64"
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

func (l *Log) noteSize(n uint64) {
	for {
		cur := l.size.Load()
		if n <= cur || l.size.CompareAndSwap(cur, n) {
			return
		}
	}
}

// Size is the largest tree size this replica has seen (its own appends,
// SizeContext, checkpoints). Other replicas' appends make it lag; use
// SizeContext for the database's.
func (l *Log) Size() uint64 { return l.size.Load() }

// SizeContext reads the number of records in the shared trail.
func (l *Log) SizeContext(ctx context.Context) (uint64, error) {
	var n int64
	if err := l.pool.QueryRow(ctx, l.sql.size).Scan(&n); err != nil {
		return 0, fmt.Errorf("trail: postgres size: %w", err)
	}
	l.noteSize(uint64(n))
	return uint64(n), nil
}

// Stats counts this replica's group-commit work since open.
func (l *Log) Stats() trail.Stats {
	return trail.Stats{Records: l.records.Load(), Batches: l.batches.Load()}
}

func (l *Log) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), l.opts.Timeout)
}

// Get returns the record with sequence number seq.
func (l *Log) Get(seq uint64) (trail.Record, error) {
	if l.closed.Load() {
		return trail.Record{}, trail.ErrClosed
	}
	ctx, cancel := l.opContext()
	defer cancel()
	return l.getOne(ctx, fmt.Sprint(seq), l.sql.bySeq, int64(min(seq, math.MaxInt64)))
}

// GetByID returns the record with the given decision or event id (the
// first, should several carry it).
func (l *Log) GetByID(ctx context.Context, id string) (trail.Record, error) {
	if l.closed.Load() {
		return trail.Record{}, trail.ErrClosed
	}
	return l.getOne(ctx, "id "+id, l.sql.byID, id)
}

func (l *Log) getOne(ctx context.Context, what, sql string, arg any) (trail.Record, error) {
	rows, err := l.pool.Query(ctx, sql, arg)
	if err != nil {
		return trail.Record{}, fmt.Errorf("trail: get %s: %w", what, err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (pgRow, error) {
		var r pgRow
		return r, row.Scan(r.dest()...)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return trail.Record{}, fmt.Errorf("%w: %s", trail.ErrNotFound, what)
	}
	if err != nil {
		return trail.Record{}, fmt.Errorf("trail: get %s: %w", what, err)
	}
	return l.record(ctx, &r)
}

// pgRow is a row of trail_records.
type pgRow struct {
	seq      int64
	kind, id string
	time     time.Time
	body     []byte
	leaf     []byte
	pruned   bool
	dict     pgtype.Int8 // compressed with this dictionary record; NULL: plain
	up       []byte      // the interior stored hashes the record completes (hashes.go)
}

func (r *pgRow) dest() []any {
	return []any{&r.seq, &r.kind, &r.id, &r.time, &r.body, &r.leaf, &r.pruned, &r.dict, &r.up}
}

// record decodes the row: its canonical bytes (expanded, for a compressed
// row), or for a tombstone what the columns keep.
func (l *Log) record(ctx context.Context, r *pgRow) (trail.Record, error) {
	if r.pruned {
		return trail.Record{Seq: uint64(r.seq), Kind: r.kind, ID: r.id, Time: r.time.UTC(), Pruned: true,
			Leaf: base64.StdEncoding.EncodeToString(r.leaf)}, nil
	}
	if r.body == nil {
		return trail.Record{}, fmt.Errorf("trail: record %d has no body and is not a tombstone", r.seq)
	}
	canon, err := r.canonical(func(seq int64) (*trail.Dictionary, error) { return l.dictionary(ctx, seq) })
	if err != nil {
		return trail.Record{}, fmt.Errorf("trail: record %d: %w", r.seq, err)
	}
	var rec trail.Record
	if err := json.Unmarshal(canon, &rec); err != nil {
		return trail.Record{}, fmt.Errorf("trail: decode record %d: %w", r.seq, err)
	}
	return rec, nil
}

// Scan calls fn for each record with from <= seq < to, in order, stopping at
// the first error. It reads in chunks (each bounded by Timeout), and holds
// no connection while fn runs.
func (l *Log) Scan(from, to uint64, fn func(trail.Record) error) error {
	to = min(to, math.MaxInt64)
	for from < to {
		if l.closed.Load() {
			return trail.ErrClosed
		}
		ctx, cancel := l.opContext()
		rows, err := l.pool.Query(ctx, l.sql.selRecords, int64(from), int64(to), l.scanChunk)
		var chunk []pgRow
		if err == nil {
			var r pgRow
			_, err = pgx.ForEachRow(rows, r.dest(), func() error { chunk = append(chunk, r); return nil })
		}
		cancel()
		if err != nil {
			return fmt.Errorf("trail: scan from %d: %w", from, err)
		}
		for i := range chunk {
			// A dictionary read is bounded by Timeout on its own.
			rec, err := l.record(context.Background(), &chunk[i])
			if err != nil {
				return err
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		if len(chunk) < l.scanChunk {
			return nil
		}
		from = uint64(chunk[len(chunk)-1].seq) + 1
	}
	return nil
}

// Checkpoint signs a tree head for the shared trail's current size, stores
// it and returns it. If the tree has not grown since the latest checkpoint
// (whichever replica wrote it), that checkpoint is returned.
func (l *Log) Checkpoint() ([]byte, error) {
	if l.opts.Signer == nil {
		return nil, trail.ErrNoSigner
	}
	if l.closed.Load() {
		return nil, trail.ErrClosed
	}
	ctx, cancel := l.opContext()
	defer cancel()
	return l.checkpoint(ctx)
}

func (l *Log) checkpoint(ctx context.Context) ([]byte, error) {
	var signed []byte
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		// Serialises checkpoint writers, so sizes only grow; appends and
		// readers do not take this lock.
		if _, err := tx.Exec(ctx, l.sql.lockCheckpoints); err != nil {
			return err
		}
		// Before the first read, which takes the snapshot (headroot.go).
		lay, err := l.readLayout(ctx, tx)
		if err != nil {
			return err
		}
		var size, last int64
		var lastSigned string
		var rootSize pgtype.Int8
		var headRoot []byte
		headSQL := l.sql.headRoot
		if !lay.hasRoot {
			headSQL = l.sql.headNoRoot
		}
		seen := l.size.Load() // before the head is read (cutBelow)
		if err := tx.QueryRow(ctx, headSQL).Scan(&size, &rootSize, &headRoot); err != nil {
			return err
		}
		if lay.rooted { // before any hash is computed from the head's columns
			if err := rootUnusable(size, rootSize, headRoot); err != nil {
				return err
			}
		}
		if err := cutBelow(size, seen); err != nil { // never sign a cut tree
			return err
		}
		l.noteSize(uint64(size))
		err = tx.QueryRow(ctx, l.sql.lastCheckpoint).Scan(&last, &lastSigned)
		if high := l.cpHigh.Load(); (err == nil && last < high) || (errors.Is(err, pgx.ErrNoRows) && high > 0) {
			return fmt.Errorf("%w: the latest stored checkpoint is of %d records, but one of %d was seen: checkpoints were deleted", trail.ErrDamaged, last, high)
		}
		switch {
		case err == nil && last == size:
			// Handed out as this trail's latest (to the witness file, to
			// 'pdp log checkpoint'): only if it is the tree the head holds.
			if err := l.sameTree(ctx, tx, lay, size, headRoot, []byte(lastSigned)); err != nil {
				return err
			}
			signed = []byte(lastSigned)
			l.noteCheckpoint(last)
			return nil
		case err == nil && last > size:
			return fmt.Errorf("%w: checkpoint of size %d beyond the tree head %d", trail.ErrDamaged, last, size)
		case err != nil && !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		hs := l.hashSource(ctx, tx, tlog.StoredHashCount(size), size, lay.legacy)
		root, err := tlog.TreeHash(size, hs)
		if err != nil {
			return fmt.Errorf("tree hash: %w", err)
		}
		// Sign only the tree the head's root is of: a checkpoint over rows
		// changed since would make the change look signed (headroot.go).
		if lay.rooted {
			if err := rootMismatch(size, headRoot, hs); err != nil {
				return err
			}
		}
		// Nor one that drops records this replica appended.
		own, ownRoot := l.ownTree()
		if err := extendsOwn(own, ownRoot, size, hs); err != nil {
			return err
		}
		// And only a tree that extends the latest checkpoint: rows and root
		// forged consistently under it are refused here too.
		if last > 0 && last < size {
			prev, err := l.latestHead([]byte(lastSigned))
			if err != nil {
				return fmt.Errorf("%w: the latest checkpoint: %w", trail.ErrDamaged, err)
			}
			if err := rootMismatch(last, prev.Root[:], hs); err != nil {
				return fmt.Errorf("the tree does not extend the checkpoint of %d records: %w", last, err)
			}
		}
		head := trail.TreeHead{Origin: l.opts.Origin, Size: uint64(size), Root: root}
		if signed, err = head.Sign(l.opts.Signer); err != nil {
			return fmt.Errorf("sign: %w", err)
		}
		if _, err = tx.Exec(ctx, l.sql.insCheckpoint, size, string(signed)); err != nil {
			return err
		}
		if last > 0 {
			l.noteCheckpoint(last)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("trail: postgres checkpoint: %w", err)
	}
	if h, herr := trail.UnverifiedHead(signed); herr == nil {
		l.noteCheckpoint(int64(h.Size))
	}
	if fn := l.cpHook.Load(); fn != nil {
		(*fn)(bytes.Clone(signed))
	}
	return signed, nil
}

// OnCheckpoint makes fn get every checkpoint this replica's Checkpoint
// returns (Run's, Close's, a caller's: a new one, or the latest stored when
// the tree has not grown, checked against the head), after it is stored:
// a copy of the trail's checkpoints kept elsewhere (trail.witness_file)
// follows them without signing any of its own. fn must not block.
func (l *Log) OnCheckpoint(fn func(signed []byte)) { l.cpHook.Store(&fn) }

// sameTree checks that signed, the latest stored checkpoint, is of the
// tree of size records the head holds: its signature (when the verifier
// key is known), origin and size, and its root against the head's root
// (or, in a layout without one, the stored hashes' tree). Anything else is
// ErrDamaged: a row planted or changed outside the PDP.
func (l *Log) sameTree(ctx context.Context, q querier, lay layout, size int64, headRoot, signed []byte) error {
	h, err := l.latestHead(signed)
	if err != nil {
		return fmt.Errorf("%w: the latest checkpoint: %w", trail.ErrDamaged, err)
	}
	if h.Origin != l.opts.Origin || h.Size != uint64(size) {
		return fmt.Errorf("%w: the latest checkpoint, stored for %d records, is of %d records of origin %q; the tree head holds %d of %q",
			trail.ErrDamaged, size, h.Size, h.Origin, size, l.opts.Origin)
	}
	if lay.rooted {
		if !bytes.Equal(h.Root[:], headRoot) {
			return fmt.Errorf("%w: the latest checkpoint's root is not the tree head's (%d records): rows were changed outside the PDP",
				trail.ErrDamaged, size)
		}
		return nil
	}
	if err := rootMismatch(size, h.Root[:], l.storedHashes(ctx, q, tlog.StoredHashCount(size), lay.legacy)); err != nil {
		return fmt.Errorf("the latest checkpoint: %w", err)
	}
	return nil
}

// latestHead reads the latest stored checkpoint, checking its signature
// when the verifier key is known.
func (l *Log) latestHead(signed []byte) (trail.TreeHead, error) {
	if l.opts.VerifierKey == "" {
		return trail.UnverifiedHead(signed)
	}
	return trail.OpenCheckpoint(l.opts.VerifierKey, signed)
}

// noteCheckpoint raises cpHigh to n.
func (l *Log) noteCheckpoint(n int64) {
	for {
		cur := l.cpHigh.Load()
		if n <= cur || l.cpHigh.CompareAndSwap(cur, n) {
			return
		}
	}
}

// Checkpoints returns every stored signed checkpoint, oldest first, or nil
// when the database cannot be read (CheckpointsContext says why).
func (l *Log) Checkpoints() [][]byte {
	ctx, cancel := l.opContext()
	defer cancel()
	cps, _ := l.CheckpointsContext(ctx)
	return cps
}

// CheckpointsContext returns every stored signed checkpoint, oldest first.
func (l *Log) CheckpointsContext(ctx context.Context) ([][]byte, error) {
	if l.closed.Load() {
		return nil, trail.ErrClosed
	}
	cps, err := readCheckpoints(ctx, l.pool, l.sql.checkpoints)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(cps))
	for i, c := range cps {
		out[i] = c.signed
	}
	return out, nil
}

type pgCheckpoint struct {
	size   int64
	signed []byte
}

func readCheckpoints(ctx context.Context, q querier, sql string) ([]pgCheckpoint, error) {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("trail: read checkpoints: %w", err)
	}
	var out []pgCheckpoint
	var c pgCheckpoint
	var s string
	if _, err := pgx.ForEachRow(rows, []any{&c.size, &s}, func() error {
		out = append(out, pgCheckpoint{size: c.size, signed: []byte(s)})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("trail: read checkpoints: %w", err)
	}
	return out, nil
}

// Run writes a checkpoint every CheckpointInterval while the tree grows,
// until ctx is done or the log closed (returning nil). Unlike FileLog.Run, a
// failed checkpoint does not end it (the database may be back at the next
// tick); LastCheckpointError reports the latest failure. Without a signer
// it returns ErrNoSigner.
func (l *Log) Run(ctx context.Context) error {
	if l.opts.Signer == nil {
		return trail.ErrNoSigner
	}
	t := time.NewTicker(l.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_, err := l.Checkpoint()
			if errors.Is(err, trail.ErrClosed) {
				return nil
			}
			if errors.Is(err, trail.ErrDamaged) {
				l.opts.Logger.Error("decision trail: checkpoint refused: the stored trail was changed outside the PDP; records stay unanchored until it is repaired",
					"error", err)
			}
			l.cpErr.Store(&err)
		}
	}
}

// LastCheckpointError is the outcome of Run's latest checkpoint: nil after
// a success.
func (l *Log) LastCheckpointError() error {
	if p := l.cpErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Prove returns the inclusion proof of record seq in the tree signed by
// checkpoint, which must be one of this trail's (its root is rechecked).
func (l *Log) Prove(seq uint64, checkpoint []byte) (trail.Proof, error) {
	head, err := trail.UnverifiedHead(checkpoint)
	if err != nil {
		return trail.Proof{}, err
	}
	if seq >= head.Size {
		return trail.Proof{}, fmt.Errorf("%w: record %d is not in a tree of size %d", trail.ErrNotFound, seq, head.Size)
	}
	if l.closed.Load() {
		return trail.Proof{}, trail.ErrClosed
	}
	ctx, cancel := l.opContext()
	defer cancel()
	if !l.opts.NoMigrate {
		return l.prove(ctx, l.pool, current, seq, head)
	}
	var p trail.Proof
	err = l.readTx(ctx, func(tx pgx.Tx, lay layout) error {
		var err error
		p, err = l.prove(ctx, tx, lay, seq, head)
		return err
	})
	return p, err
}

// prove is Prove reading through q, which sees the tables in layout lay.
func (l *Log) prove(ctx context.Context, q rowQuerier, lay layout, seq uint64, head trail.TreeHead) (trail.Proof, error) {
	var size int64
	if err := q.QueryRow(ctx, l.sql.size).Scan(&size); err != nil {
		return trail.Proof{}, fmt.Errorf("trail: postgres size: %w", err)
	}
	l.noteSize(uint64(size))
	if head.Size > uint64(size) {
		return trail.Proof{}, fmt.Errorf("trail: checkpoint size %d beyond trail size %d", head.Size, size)
	}
	n := int64(head.Size)
	r := l.hashSource(ctx, q, tlog.StoredHashCount(n), n, lay.legacy)
	root, err := tlog.TreeHash(n, r)
	if err != nil {
		return trail.Proof{}, fmt.Errorf("trail: tree hash: %w", err)
	}
	if root != head.Root {
		return trail.Proof{}, fmt.Errorf("trail: checkpoint root does not match this trail's tree of size %d", head.Size)
	}
	leaf, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(seq))})
	if err != nil {
		return trail.Proof{}, err
	}
	hashes, err := tlog.ProveRecord(n, int64(seq), r)
	if err != nil {
		return trail.Proof{}, fmt.Errorf("trail: prove record %d: %w", seq, err)
	}
	return trail.Proof{RecordHash: leaf[0], LeafIndex: seq, TreeSize: head.Size, Hashes: hashes}, nil
}

// pruneChunk is the number of records one Prune transaction turns into
// tombstones.
const pruneChunk = 10000

// Prune turns the records of kind with a time before before into
// tombstones: the body is deleted, the leaf hash kept, so the tree and every
// remaining record still verify. It returns how many it pruned. A record
// whose body (expanded, for a compressed row) no longer hashes to its leaf
// is left as it is, for Verify to report, and Prune then says so with
// ErrDamaged. Dictionary records are never pruned.
//
// Tombstones keep the record's time at the microsecond precision of the
// time column.
func (l *Log) Prune(ctx context.Context, kind string, before time.Time) (int, error) {
	if kind == "" {
		return 0, fmt.Errorf("%w: prune without a kind", trail.ErrBadOption)
	}
	if kind == trail.KindDictionary {
		return 0, fmt.Errorf("%w: %s records are kept while records compressed with them are", trail.ErrBadOption, kind)
	}
	if l.closed.Load() {
		return 0, trail.ErrClosed
	}
	// The time column has microseconds: compare at that precision, rounding
	// down, so no record at or after before is pruned.
	before = before.Truncate(time.Microsecond)
	total := 0
	for {
		tag, err := l.pool.Exec(ctx, l.sql.prune, kind, before, pruneChunk)
		if err != nil {
			return total, fmt.Errorf("trail: prune: %w", err)
		}
		total += int(tag.RowsAffected())
		if tag.RowsAffected() < pruneChunk {
			break
		}
	}
	n, bad, err := l.pruneCompressed(ctx, kind, before)
	total += n
	if err != nil {
		return total, fmt.Errorf("trail: prune: %w", err)
	}
	left := int64(bad)
	var plain int64
	if err := l.pool.QueryRow(ctx, l.sql.unprunable, kind, before).Scan(&plain); err != nil {
		return total, fmt.Errorf("trail: prune: %w", err)
	}
	left += plain
	if left > 0 {
		return total, fmt.Errorf("%w: %d %s records before %s do not match their leaf hash and were not pruned; run Verify",
			trail.ErrDamaged, left, kind, before.Format(time.RFC3339Nano))
	}
	return total, nil
}

// ApplyRetention prunes every record older than now minus its class's Keep
// and returns how many it pruned per class. Classes without a rule, and
// rules with Keep 0, are kept forever. Each class is pruned in its own
// transactions, so a failure leaves the classes before it pruned.
func (l *Log) ApplyRetention(ctx context.Context, rules []trail.RetentionRule, now time.Time) (map[string]int, error) {
	if err := trail.ValidateRetention(rules); err != nil {
		return nil, err
	}
	counts := make(map[string]int, len(rules))
	for _, r := range rules {
		if r.Keep <= 0 {
			continue
		}
		n, err := l.Prune(ctx, r.Kind, now.Add(-r.Keep))
		counts[r.Kind] = n
		if err != nil {
			return counts, err
		}
	}
	return counts, nil
}
