package pgtrail

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"
)

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

// querier is a pool, a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// pgHashes is a tlog.HashReader over the stored hashes of a tree: below
// limit from the cache or the database, from limit on the hashes a batch
// is computing.
type pgHashes struct {
	ctx     context.Context
	q       querier
	sql     string
	limit   int64
	known   map[int64]tlog.Hash
	pending []tlog.Hash
}

// hashSource reads stored hashes below limit, starting from the frontier
// cache if it is the frontier of a tree of n records.
func (l *Log) hashSource(ctx context.Context, q querier, limit, n int64) *pgHashes {
	hs := &pgHashes{ctx: ctx, q: q, sql: l.sql.readHashes, limit: limit, known: make(map[int64]tlog.Hash)}
	l.frontMu.Lock()
	if l.frontN == n {
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
	var missing []int64
	for _, idx := range indexes {
		if idx < 0 || idx >= h.limit+int64(len(h.pending)) {
			return nil, fmt.Errorf("trail: stored hash %d beyond the tree (%d hashes)", idx, h.limit)
		}
		if _, ok := h.lookup(idx); !ok {
			missing = append(missing, idx)
		}
	}
	if len(missing) > 0 {
		rows, err := h.q.Query(h.ctx, h.sql, missing)
		if err != nil {
			return nil, fmt.Errorf("trail: read stored hashes: %w", err)
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
			return nil, fmt.Errorf("trail: read stored hashes: %w", err)
		}
	}
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		v, ok := h.lookup(idx)
		if !ok {
			return nil, fmt.Errorf("trail: stored hash %d missing", idx)
		}
		out[i] = v
	}
	return out, nil
}
