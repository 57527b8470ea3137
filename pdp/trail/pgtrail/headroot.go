package pgtrail

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ciampdp/pdp/pdp/trail"
)

// The head's root, and the layout as each read sees it.
//
// Since layout 1 the leaf column is the only stored copy of a record's
// leaf hash: the records after the latest checkpoint have nothing beside
// their rows to be checked against but the interior hashes in later
// rows' up columns, which the newest records do not have yet. So the head
// row keeps the tree's root and the size it is of (root, root_size),
// written by every append in the transaction of its records, and Verify
// checks that the records hash to it. A trail last written by a PDP
// without those columns gets them at the next Open that migrates (from its
// stored hashes, as the next append would); until then Verify says the
// records after the latest checkpoint cannot be checked.
//
// A log opened with NoMigrate ran no DDL, and another replica may migrate
// the tables while it reads: Verify and Prove read the layout in their own
// transaction, after locking the tables the migration rewrites (so that it
// cannot commit in the middle of their snapshot: TRUNCATE is not MVCC-safe).

// layout is what the tables are, as one transaction sees them.
type layout struct {
	legacy  bool // before layout 1: stored hashes in trail_hashes
	up      bool // trail_records has the up column
	hasRoot bool // trail_head has the root columns
}

// current is the layout an Open that migrates leaves.
var current = layout{up: true, hasRoot: true}

// readLayout returns the layout q sees: current for a log that migrated
// at Open (no replica of an earlier version changes it back). For a
// NoMigrate log it first locks the tables the migration rewrites, so it
// must come before q's first read (which takes a repeatable-read
// transaction's snapshot).
func (l *Log) readLayout(ctx context.Context, q pgx.Tx) (layout, error) {
	if !l.opts.NoMigrate {
		return current, nil
	}
	if _, err := q.Exec(ctx, l.sql.lockTables); err != nil {
		return layout{}, fmt.Errorf("lock tables: %w", err)
	}
	var migrated bool
	var lay layout
	if err := q.QueryRow(ctx, l.sql.layout).Scan(&migrated, &lay.up, &lay.hasRoot); err != nil {
		return layout{}, fmt.Errorf("read the layout: %w", err)
	}
	lay.legacy = !migrated
	if !lay.legacy && !lay.up {
		return layout{}, fmt.Errorf("%w: trail_hashes is retired but trail_records has no up column", trail.ErrDamaged)
	}
	return lay, nil
}

// readTx runs fn in a read-only repeatable-read transaction with the
// layout it sees.
func (l *Log) readTx(ctx context.Context, fn func(tx pgx.Tx, lay layout) error) error {
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	return pgx.BeginTxFunc(ctx, l.pool, opts, func(tx pgx.Tx) error {
		lay, err := l.readLayout(ctx, tx)
		if err != nil {
			return err
		}
		return fn(tx, lay)
	})
}

// noUp is a statement reading the record columns without the up column.
func noUp(sql string) string {
	return strings.Replace(sql, "pruned, dict, up FROM", "pruned, dict, NULL::bytea FROM", 1)
}

// setMissingRoot gives the head a root when it has none (a trail last
// written by a PDP without the column), computed from the stored hashes
// under the head lock, as the next append would.
func (l *Log) setMissingRoot(ctx context.Context) error {
	var root []byte
	if err := l.pool.QueryRow(ctx, "SELECT root FROM "+l.sql.head).Scan(&root); err != nil {
		return fmt.Errorf("read the head's root: %w", err)
	}
	if root != nil {
		return nil
	}
	return pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		var n int64
		var dict, rootSize pgtype.Int8
		if err := tx.QueryRow(ctx, l.sql.lockHead).Scan(&n, &dict, &rootSize); err != nil {
			return fmt.Errorf("lock head: %w", err)
		}
		h, err := tlog.TreeHash(n, l.hashSource(ctx, tx, tlog.StoredHashCount(n), n, false))
		if err != nil {
			return fmt.Errorf("the head's root: %w", err)
		}
		_, err = tx.Exec(ctx, l.sql.setRoot, h[:], n)
		return err
	})
}

// checkRoot compares the records' tree with the root the head keeps,
// once the records verified against the checkpoints and stored hashes
// (tree: the stored hashes of the records' leaves).
func (s *pgSnapshot) checkRoot(rep trail.Report, tree treeHashes) trail.Report {
	if s.legacy {
		return rep // trail_hashes holds a second copy of every hash
	}
	n := s.head
	first := min(rep.Anchored, uint64(n)) // records before are covered by signatures
	switch {
	case s.rootSize.Valid && s.rootSize.Int64 > n:
		return rep.Fail(trail.Dropped, uint64(n), fmt.Sprintf("the tree head says %d records, its root is of %d", n, s.rootSize.Int64))
	case s.rootSize.Valid && len(s.root) == tlog.HashSize:
		h, err := tlog.TreeHash(s.rootSize.Int64, tree)
		if err == nil && h == tlog.Hash(s.root) {
			break
		}
		if first < uint64(s.rootSize.Int64) {
			return rep.Fail(trail.Changed, first, fmt.Sprintf("the records [%d,%d) after the latest checkpoint do not hash to the root the tree head keeps "+
				"for size %d: one was changed, dropped or inserted with its leaf column", first, s.rootSize.Int64, s.rootSize.Int64))
		}
		return rep.Fail(trail.StoredHashes, uint64(s.rootSize.Int64), "the records verify against the checkpoints, but the root the tree head keeps differs from their tree")
	}
	covered := first
	if s.rootSize.Valid && len(s.root) == tlog.HashSize {
		covered = max(covered, uint64(s.rootSize.Int64))
	}
	if covered < uint64(n) {
		return rep.Fail(trail.StoredHashes, covered, fmt.Sprintf("the tree head keeps no root for the records [%d,%d) "+
			"(written by an earlier PDP, or removed): they cannot be checked until a PDP of this version appends or starts, "+
			"or a checkpoint covers them", covered, n))
	}
	return rep
}
