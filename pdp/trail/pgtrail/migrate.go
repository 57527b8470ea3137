package pgtrail

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ciampdp/pdp/pdp/internal/pgkit"
	"github.com/ciampdp/pdp/pdp/trail"
)

// migrations are the changes of the trail's layout, applied once per
// database by Open (pgkit), in trail_schema_versions under store "trail".
func migrations(q pgSQL) []pgkit.Migration {
	return []pgkit.Migration{{
		Version: 1,
		Name:    "one copy of each stored hash: interior hashes in trail_records.up, trail_hashes retired",
		Up:      func(ctx context.Context, tx pgx.Tx) error { return moveHashes(ctx, tx, q) },
	}}
}

// moveChunk is the number of records whose hashes one statement moves.
const moveChunk = 8192

// retiredConstraint refuses the rows a PDP from before layout 1 would
// still write into trail_hashes: its appends fail (and write nothing)
// instead of leaving records without their up column.
const retiredConstraint = "trail_hashes_retired_see_trail_records_up"

// moveHashes is layout 1: the interior stored hashes move from
// trail_hashes into the up column of the record that completed them, and
// the level-0 hashes, copies of the leaf column, are dropped after
// checking that they are copies. A trail whose trail_hashes does not hold
// exactly its tree's stored hashes, or whose leaf column differs from
// them, is not migrated (Open fails): that evidence of tampering is what
// the previous PDP's pdp log verify reports, and the migration does not
// erase it. It takes the head lock first, as an append does, so that it
// waits for a running append of an older replica and the next one waits
// for it (and then fails on the constraint).
func moveHashes(ctx context.Context, tx pgx.Tx, q pgSQL) error {
	var n, rows int64
	if err := tx.QueryRow(ctx, "SELECT size FROM "+q.head+" FOR UPDATE").Scan(&n); err != nil {
		return fmt.Errorf("lock head: %w", err)
	}
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+q.hashes).Scan(&rows); err != nil {
		return fmt.Errorf("count trail_hashes: %w", err)
	}
	moved := false // trail_hashes empty and every record has its up column: nothing to move
	if rows == 0 {
		err := tx.QueryRow(ctx, "SELECT NOT EXISTS (SELECT 1 FROM "+q.records+" WHERE seq < $1 AND seq % 2 = 1 AND up IS NULL)", n).Scan(&moved)
		if err != nil {
			return fmt.Errorf("read trail_records: %w", err)
		}
	}
	if !moved && rows != tlog.StoredHashCount(n) {
		return fmt.Errorf("%w: trail_hashes holds %d rows, a tree of %d records has %d stored hashes: not migrated "+
			"(run pdp log verify of the previous PDP version on this trail)", trail.ErrDamaged, rows, n, tlog.StoredHashCount(n))
	}
	for a := int64(0); !moved && a < n; a += moveChunk {
		if err := moveChunkOf(ctx, tx, q, a, min(a+moveChunk, n)); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, "TRUNCATE "+q.hashes+"; ALTER TABLE "+q.hashes+
		" DROP CONSTRAINT IF EXISTS "+retiredConstraint+", ADD CONSTRAINT "+retiredConstraint+" CHECK (false)")
	return err
}

// moveChunkOf moves the stored hashes of records [a, b).
func moveChunkOf(ctx context.Context, tx pgx.Tx, q pgSQL, a, b int64) error {
	lo, hi := tlog.StoredHashIndex(0, a), tlog.StoredHashIndex(0, b)
	rows, err := tx.Query(ctx, "SELECT idx, hash FROM "+q.hashes+" WHERE idx >= $1 AND idx < $2 ORDER BY idx", lo, hi)
	if err != nil {
		return fmt.Errorf("read trail_hashes: %w", err)
	}
	hashes := make([]tlog.Hash, 0, hi-lo)
	var idx int64
	var raw []byte
	if _, err := pgx.ForEachRow(rows, []any{&idx, &raw}, func() error {
		if idx != lo+int64(len(hashes)) || len(raw) != tlog.HashSize {
			return fmt.Errorf("%w: trail_hashes row %d is missing or malformed: not migrated "+
				"(run pdp log verify of the previous PDP version on this trail)", trail.ErrDamaged, lo+int64(len(hashes)))
		}
		hashes = append(hashes, tlog.Hash(raw))
		return nil
	}); err != nil {
		return fmt.Errorf("read trail_hashes: %w", err)
	}
	if int64(len(hashes)) != hi-lo {
		return fmt.Errorf("%w: trail_hashes lacks rows from %d: not migrated", trail.ErrDamaged, lo+int64(len(hashes)))
	}
	seqs := make([]int64, 0, b-a)
	leafs, ups := make([][]byte, 0, b-a), make([][]byte, 0, b-a)
	for seq := a; seq < b; seq++ {
		i := tlog.StoredHashIndex(0, seq) - lo
		seqs = append(seqs, seq)
		leafs = append(leafs, hashes[i][:])
		ups = append(ups, packUp(hashes[i:i+1+int64(upLevels(seq))]))
	}
	tag, err := tx.Exec(ctx, "UPDATE "+q.records+" r SET up = u.up FROM unnest($1::bigint[], $2::bytea[], $3::bytea[]) AS u(seq, leaf, up)"+
		" WHERE r.seq = u.seq AND r.leaf = u.leaf", seqs, leafs, ups)
	if err != nil {
		return fmt.Errorf("write trail_records.up: %w", err)
	}
	if tag.RowsAffected() == b-a {
		return nil
	}
	var first int64
	if err := tx.QueryRow(ctx, "SELECT min(u.seq) FROM unnest($1::bigint[], $2::bytea[]) AS u(seq, leaf) LEFT JOIN "+q.records+
		" r ON r.seq = u.seq WHERE r.seq IS NULL OR r.leaf <> u.leaf", seqs, leafs).Scan(&first); err != nil {
		return fmt.Errorf("find the record whose leaf differs: %w", err)
	}
	return fmt.Errorf("%w: record %d is missing or its leaf column differs from its stored hash in trail_hashes: not migrated "+
		"(run pdp log verify of the previous PDP version on this trail)", trail.ErrDamaged, first)
}
