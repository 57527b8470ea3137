package pgtrail

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ciampdp/pdp/pdp/trail"
)

// CheckWitnessed checks each signed checkpoint of witnessed (kept outside
// the database: a witness file) against the shared trail as one
// repeatable-read snapshot sees it, with trail.CheckWitnessed: the size
// is the head row's, the hashes the rows' leaf and up columns (read
// afresh, not from the frontier this log caches), O(log n) of them per
// checkpoint. One error per checkpoint, nil for one that holds; the
// second result is an error reading the database.
func (l *Log) CheckWitnessed(ctx context.Context, verifierKey string, witnessed [][]byte) ([]error, error) {
	if _, err := trail.Verifiers(verifierKey); err != nil {
		return nil, err
	}
	if l.closed.Load() {
		return nil, trail.ErrClosed
	}
	out := make([]error, len(witnessed))
	err := l.readTx(ctx, func(tx pgx.Tx, lay layout) error {
		var size int64
		if err := tx.QueryRow(ctx, l.sql.size).Scan(&size); err != nil {
			return fmt.Errorf("read head: %w", err)
		}
		stored := l.storedHashes(ctx, tx, tlog.StoredHashCount(size), lay.legacy)
		for i, w := range witnessed {
			_, out[i] = trail.CheckWitnessed(verifierKey, l.opts.Origin, w, uint64(size), stored)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("trail: check witnessed checkpoints: %w", err)
	}
	return out, nil
}
