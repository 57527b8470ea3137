package pgtrail

import (
	"context"
	"fmt"
	"math/bits"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"
)

// Stored hashes, one copy each (layout version 1).
//
// tlog's stored hashes of a tree are its leaf hashes (level 0) and the
// hashes of its complete subtrees (levels 1 and up). Record n completes
// the subtrees of levels 1..t ending at it, t its number of trailing one
// bits, and tlog numbers those hashes right after its leaf. So each hash
// lives in the row of the record that completed it: level 0 in the leaf
// column, levels 1..t concatenated in the up column (NULL when t is 0,
// as for every even seq). A tree of n records keeps its ~2n stored hashes
// in n rows, with no row or index of their own; a read of any O(log n) of
// them is a primary-key read of as many rows. Before layout 1,
// trail_hashes held every stored hash (the leaves a second time); the
// migration (migrate.go) moves its interior hashes into up.

// frontier lists the stored-hash indexes of the complete subtrees a tree of
// n records splits into, largest first: what tlog.TreeHash(n) reads, and
// all that appending records n, n+1, … needs from before n.
func frontier(n int64) []int64 {
	var idx []int64
	for level := 62; level >= 0; level-- {
		if n>>level&1 == 1 {
			idx = append(idx, tlog.StoredHashIndex(level, n>>level-1))
		}
	}
	return idx
}

// hashHome is the seq of the record whose row holds stored hash idx.
func hashHome(idx int64) int64 {
	level, k := tlog.SplitStoredHashIndex(idx)
	return (k+1)<<level - 1
}

// upLevels is how many interior stored hashes record seq completes.
func upLevels(seq int64) int { return bits.TrailingZeros64(^uint64(seq)) }

// packUp is the up column of a record whose stored hashes are stored
// (its leaf first, as tlog.StoredHashesForRecordHash returns them).
func packUp(stored []tlog.Hash) []byte {
	if len(stored) < 2 {
		return nil
	}
	up := make([]byte, 0, (len(stored)-1)*tlog.HashSize)
	for _, h := range stored[1:] {
		up = append(up, h[:]...)
	}
	return up
}

// rowHashes calls put with the index and value of each stored hash a row
// of record seq holds, after checking the columns have the lengths its seq
// calls for.
func rowHashes(seq int64, leaf, up []byte, put func(idx int64, h tlog.Hash)) error {
	t := upLevels(seq)
	if len(leaf) != tlog.HashSize {
		return fmt.Errorf("record %d: leaf hash of %d bytes", seq, len(leaf))
	}
	if len(up) != t*tlog.HashSize {
		return fmt.Errorf("record %d: %d bytes of interior stored hashes, want %d", seq, len(up), t*tlog.HashSize)
	}
	idx := tlog.StoredHashIndex(0, seq)
	put(idx, tlog.Hash(leaf))
	for l := range t {
		put(idx+1+int64(l), tlog.Hash(up[l*tlog.HashSize:(l+1)*tlog.HashSize]))
	}
	return nil
}

// querier is a pool, a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// rowQuerier is a querier that also reads single rows.
type rowQuerier interface {
	querier
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// pgHashes is a tlog.HashReader over the stored hashes of a tree: below
// limit from the cache or the rows of trail_records, from limit on the
// hashes a batch is computing.
type pgHashes struct {
	ctx     context.Context
	q       querier
	sql     string // seq, leaf, up of the records with seq = ANY($1)
	legacy  string // when set: idx, hash of trail_hashes with idx = ANY($1)
	limit   int64
	known   map[int64]tlog.Hash
	pending []tlog.Hash
}

// storedHashes reads stored hashes below limit from the rows q sees (from
// trail_hashes when legacy), none of them known beforehand.
func (l *Log) storedHashes(ctx context.Context, q querier, limit int64, legacy bool) *pgHashes {
	hs := &pgHashes{ctx: ctx, q: q, sql: l.sql.readHashes, limit: limit, known: make(map[int64]tlog.Hash)}
	if legacy {
		hs.legacy = l.sql.legacyHashes
	}
	return hs
}

// hashSource reads stored hashes below limit, starting from the frontier
// cache if it is the frontier of a tree of n records.
// legacy: the tables are in the layout before version 1 (trail_hashes).
func (l *Log) hashSource(ctx context.Context, q querier, limit, n int64, legacy bool) *pgHashes {
	hs := l.storedHashes(ctx, q, limit, legacy)
	l.frontMu.Lock()
	if l.frontN == n && !legacy {
		for idx, h := range l.front {
			hs.known[idx] = h
		}
	}
	l.frontMu.Unlock()
	return hs
}

func (h *pgHashes) lookup(idx int64) (tlog.Hash, bool) {
	if idx >= h.limit {
		if j := idx - h.limit; j < int64(len(h.pending)) {
			return h.pending[j], true
		}
		return tlog.Hash{}, false
	}
	v, ok := h.known[idx]
	return v, ok
}

func (h *pgHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	var seqs, missing []int64
	for _, idx := range indexes {
		if idx < 0 || idx >= h.limit+int64(len(h.pending)) {
			return nil, fmt.Errorf("trail: stored hash %d beyond the tree (%d hashes)", idx, h.limit)
		}
		if _, ok := h.lookup(idx); !ok {
			seqs, missing = append(seqs, hashHome(idx)), append(missing, idx)
		}
	}
	if len(missing) > 0 && h.legacy != "" {
		if err := h.readLegacy(missing); err != nil {
			return nil, err
		}
		seqs = nil
	}
	if len(seqs) > 0 {
		rows, err := h.q.Query(h.ctx, h.sql, seqs)
		if err != nil {
			return nil, fmt.Errorf("trail: read stored hashes: %w", err)
		}
		var seq int64
		var leaf, up []byte
		_, err = pgx.ForEachRow(rows, []any{&seq, &leaf, &up}, func() error {
			return rowHashes(seq, leaf, up, func(idx int64, v tlog.Hash) {
				if idx < h.limit {
					h.known[idx] = v
				}
			})
		})
		if err != nil {
			return nil, fmt.Errorf("trail: read stored hashes: %w", err)
		}
	}
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		v, ok := h.lookup(idx)
		if !ok {
			return nil, fmt.Errorf("trail: stored hash %d (record %d) missing", idx, hashHome(idx))
		}
		out[i] = v
	}
	return out, nil
}

// readLegacy reads stored hashes from trail_hashes (the layout before
// version 1, read as it is by a log opened with NoMigrate).
func (h *pgHashes) readLegacy(idxs []int64) error {
	rows, err := h.q.Query(h.ctx, h.legacy, idxs)
	if err != nil {
		return fmt.Errorf("trail: read stored hashes: %w", err)
	}
	var idx int64
	var raw []byte
	_, err = pgx.ForEachRow(rows, []any{&idx, &raw}, func() error {
		if len(raw) != tlog.HashSize {
			return fmt.Errorf("stored hash %d has %d bytes", idx, len(raw))
		}
		h.known[idx] = tlog.Hash(raw)
		return nil
	})
	if err != nil {
		return fmt.Errorf("trail: read stored hashes: %w", err)
	}
	return nil
}
