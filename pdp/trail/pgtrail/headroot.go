package pgtrail

import (
	"context"
	"encoding/hex"
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
// row keeps the tree's root and the size it is of (root, root_size). An
// append, under the head lock, first checks that the hashes at the tip of
// the rows hash to that root, and writes the new root in the transaction
// of its records; a checkpoint signs only a tree that hashes to it; Verify
// checks that the records hash to it. So changing the newest records
// takes rewriting their rows and the root consistently (the signed
// checkpoints catch that too, once one covers them), and a change of the
// rows alone is not laundered by the next append or checkpoint. They fail
// closed with ErrDamaged when they read what changed: the hashes at the
// tip (frontier) are those of the complete subtrees, which hold a record's
// own leaf only for the newest record of a tree of odd size, and a replica
// reads them from the rows only when it did not append the tip itself.
// Otherwise they succeed on the tree the root is of, the new root built on
// the hashes as written, and Verify names the change
// (TestPostgresRewriteWithLeafCaughtAtTip).
//
// The head may also be cut consistently: records deleted and size, root
// size and root set to the shorter tree. A running replica remembers the
// largest size it has seen (Log.size) and its appends and checkpoints
// refuse a head below it (cutBelow): it never numbers a record over one it
// answered for, nor signs the cut tree. Once other records have been
// appended past that size, the tree it appended last (frontN, frontRoot)
// tells: its appends and checkpoints refuse a tree that does not extend
// it (extendsOwn, from hashes read in the same round trip). A start
// refuses records or checkpoints beyond the head (rowsBeyond): a head row
// deleted is inserted again by the DDL as the empty tree (size and root
// size 0, the empty tree's root, so the constraint below holds), no new
// trail then; a trail emptied whole (no record, no checkpoint) starts as
// a new one.
//
// A constraint on trail_head (rootedConstraint) makes a head without a
// root, or with a root of another size, impossible: appends of a PDP of an
// earlier version, which move the size and not the root, fail. It is added
// by the upgrade step (upgradeRoot), which is decided by the tables like
// the hash-layout migration: while the constraint is absent, the next Open
// that migrates computes the root from the rows as they are (after
// checking any root already kept against them), logs it at Warn, and adds
// the constraint, in one transaction under the head lock. Until then a
// head without a root is what Verify reports as stored_hashes (the records
// after the latest checkpoint cannot be checked).
//
// A log opened with NoMigrate ran no DDL, and another replica may migrate
// the tables while it reads: Verify and Prove read the layout in their own
// transaction, after locking the tables the migration rewrites (so that it
// cannot commit in the middle of their snapshot: TRUNCATE is not MVCC-safe).

// rootedConstraint is the constraint of trail_head that requires its root
// to be kept for its size.
const rootedConstraint = "trail_head_root_of_size"

// emptyRoot is the root of the tree of no records (RFC 6962: the hash of
// the empty string), as an SQL bytea literal.
var emptyRoot = func() string {
	h, _ := tlog.TreeHash(0, nil)
	return `'\x` + hex.EncodeToString(h[:]) + `'::bytea`
}()

// layout is what the tables are, as one transaction sees them.
type layout struct {
	legacy  bool // before layout 1: stored hashes in trail_hashes
	up      bool // trail_records has the up column
	hasRoot bool // trail_head has the root columns
	rooted  bool // trail_head has rootedConstraint: the upgrade step ran
}

// current is the layout an Open that migrates leaves.
var current = layout{up: true, hasRoot: true, rooted: true}

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
	if err := q.QueryRow(ctx, l.sql.layout).Scan(&migrated, &lay.up, &lay.hasRoot, &lay.rooted); err != nil {
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

// upgradeRoot is the upgrade step that gives the head its root, run by
// every Open that migrates while trail_head lacks rootedConstraint: under
// the head's table lock (appends and readers wait) it checks a root the
// head keeps already (written by a PDP of the previous version) against
// the rows, computes the root of the whole tree from the rows as they are,
// stores it and adds the constraint. Rows changed before it runs are
// trusted: the Warn log names the size it trusted. A head with records or
// checkpoints beyond it (a deleted head row comes back with size 0) is
// refused, not taken for a new trail.
func (l *Log) upgradeRoot(ctx context.Context) error {
	var rooted bool
	if err := l.pool.QueryRow(ctx, l.sql.rooted).Scan(&rooted); err != nil {
		return fmt.Errorf("read the head's constraints: %w", err)
	}
	if rooted {
		return nil
	}
	var n int64
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, l.sql.lockHeadTable); err != nil {
			return fmt.Errorf("lock head: %w", err)
		}
		if err := tx.QueryRow(ctx, l.sql.rooted).Scan(&rooted); err != nil || rooted {
			return err // another replica ran the step meanwhile
		}
		var rootSize pgtype.Int8
		var root []byte
		if err := tx.QueryRow(ctx, l.sql.headRoot).Scan(&n, &rootSize, &root); err != nil {
			return fmt.Errorf("read head: %w", err)
		}
		hs := l.hashSource(ctx, tx, tlog.StoredHashCount(max(n, 0)), n, false)
		if n < 0 {
			return fmt.Errorf("%w: the tree head says %d records", trail.ErrDamaged, n)
		}
		// A head of 0 is a new trail only when nothing lies beyond it: a
		// head row deleted is inserted again with size 0 by the DDL.
		if err := l.rowsBeyond(ctx, tx); err != nil {
			return err
		}
		if rootSize.Valid || root != nil { // kept by a PDP of the previous version
			err := rootUnusable(rootSize.Int64, rootSize, root)
			if err == nil && (rootSize.Int64 < 0 || rootSize.Int64 > n) {
				err = rootUnusable(n, rootSize, root)
			}
			if err == nil {
				err = rootMismatch(rootSize.Int64, root, hs)
			}
			if err != nil {
				return err
			}
		}
		h, err := tlog.TreeHash(n, hs)
		if err != nil {
			return fmt.Errorf("the head's root: %w", err)
		}
		if _, err := tx.Exec(ctx, l.sql.setRoot, h[:], n); err != nil {
			return fmt.Errorf("set the head's root: %w", err)
		}
		if _, err := tx.Exec(ctx, l.sql.addRooted); err != nil {
			return fmt.Errorf("add the head's root constraint: %w", err)
		}
		return nil
	})
	if err != nil || rooted {
		return err
	}
	if n == 0 { // a new trail: nothing was trusted
		l.opts.Logger.Debug("trail: the tree head keeps its root", "size", n, "schema", l.opts.Schema)
		return nil
	}
	l.opts.Logger.Warn("trail: the tree head now keeps its root, computed from the records as they are (upgrade step): "+
		"run pdp log verify if the trail may have been changed before",
		"size", n, "schema", l.opts.Schema)
	return nil
}

// rowsBeyond reports, as ErrDamaged, records or checkpoints beyond the
// tree head as q sees it: the head row was deleted (the DDL inserts one of
// size 0 again) or cut, or rows were inserted. An append would collide
// with them, the upgrade step would give the head the root of a tree that
// is not the trail's. Read at every start that migrates (two index look-ups).
func (l *Log) rowsBeyond(ctx context.Context, q rowQuerier) error {
	var n int64
	var last, cp pgtype.Int8
	if err := q.QueryRow(ctx, l.sql.beyond).Scan(&n, &last, &cp); err != nil {
		return fmt.Errorf("read the head, the last record and the latest checkpoint: %w", err)
	}
	switch {
	case last.Valid && last.Int64 >= n:
		return fmt.Errorf("%w: the tree head says %d records, but trail_records holds record %d: "+
			"the head row was deleted or cut, or records were inserted (run pdp log verify)", trail.ErrDamaged, n, last.Int64)
	case cp.Valid && cp.Int64 > n:
		return fmt.Errorf("%w: the tree head says %d records, but trail_checkpoints holds a checkpoint of %d: "+
			"the head row was deleted or cut (run pdp log verify)", trail.ErrDamaged, n, cp.Int64)
	}
	return nil
}

// cutBelow reports, as ErrDamaged, a tree head of n records below seen,
// the largest size this replica had seen (Log.size) before it read the
// head: records were cut (deleted, with the head's size and root set to
// the shorter tree, which the constraint lets through). An append would
// give their sequence numbers, which callers were answered with, to other
// records, and a checkpoint would sign the cut tree. One comparison, no
// round trip. seen must be loaded before the head is read: a size noted
// meanwhile (this replica's own commit racing a checkpoint) may be larger.
func cutBelow(n int64, seen uint64) error {
	if n < 0 || uint64(n) < seen {
		return fmt.Errorf("%w: records were cut: the tree head says %d records, this replica has seen %d (run pdp log verify)",
			trail.ErrDamaged, n, seen)
	}
	return nil
}

// ownTree is the size and root of the tree this replica appended last
// (size -1: none yet).
func (l *Log) ownTree() (int64, tlog.Hash) {
	l.frontMu.Lock()
	defer l.frontMu.Unlock()
	return l.frontN, l.frontRoot
}

// extendsOwn reports, as ErrDamaged, a tree of n records (stored hashes
// hs) that does not extend the tree of own records with root ownRoot that
// this replica appended: records it numbered were cut and others written
// in their place (the head having grown past what it saw since, the size
// alone does not tell). hs must hold the hashes at the tip of own, read
// with those of n (write) or by a tree hash of n (checkpoint).
func extendsOwn(own int64, ownRoot tlog.Hash, n int64, hs tlog.HashReader) error {
	if own <= 0 || own >= n {
		return nil // nothing appended yet, or the tree hashes to the root as it is
	}
	if err := rootMismatch(own, ownRoot[:], hs); err != nil {
		return fmt.Errorf("%w: records were cut and written again: the tree of %d records this replica appended "+
			"is not part of the tree of %d (run pdp log verify)", trail.ErrDamaged, own, n)
	}
	return nil
}

// rootUnusable reports, as ErrDamaged, a head whose root is not that of
// its tree of n records: missing, of another size, or malformed (under the
// head lock, before anything else is read: no hash is computed for a
// negative or foreign size).
func rootUnusable(n int64, rootSize pgtype.Int8, root []byte) error {
	switch {
	case !rootSize.Valid || root == nil:
		return fmt.Errorf("%w: the tree head of %d records keeps no root (run pdp log verify)", trail.ErrDamaged, n)
	case rootSize.Int64 != n:
		return fmt.Errorf("%w: the tree head says %d records, its root is of %d (run pdp log verify)", trail.ErrDamaged, n, rootSize.Int64)
	case len(root) != tlog.HashSize:
		return fmt.Errorf("%w: the tree head's root has %d bytes (run pdp log verify)", trail.ErrDamaged, len(root))
	}
	return nil
}

// rootMismatch reports, as ErrDamaged, stored hashes hs of the records
// [0,n) that do not hash to root.
func rootMismatch(n int64, root []byte, hs tlog.HashReader) error {
	h, err := tlog.TreeHash(n, hs)
	if err != nil {
		return fmt.Errorf("the tree of %d records: %w", n, err)
	}
	if h != tlog.Hash(root) {
		return fmt.Errorf("%w: the records [0,%d) do not hash to the root the tree head keeps: "+
			"rows were changed outside the PDP (run pdp log verify)", trail.ErrDamaged, n)
	}
	return nil
}

// checkRoot compares the records' tree with the root the head keeps,
// once the records verified against the checkpoints and stored hashes
// (tree: the stored hashes of the records' leaves). The head's columns are
// checked before any hash is computed from them.
func (s *pgSnapshot) checkRoot(rep trail.Report, tree treeHashes) trail.Report {
	if s.legacy {
		return rep // trail_hashes holds a second copy of every hash
	}
	n := s.head
	first := min(rep.Anchored, uint64(n)) // records before are covered by signatures
	after := func(what string) trail.Report {
		return rep.Fail(trail.Changed, first, fmt.Sprintf("the tree head of %d records %s: the records after the latest "+
			"checkpoint cannot be checked (the head row was changed outside the PDP)", n, what))
	}
	switch {
	case !s.rooted && !s.rootSize.Valid && s.root == nil:
		if first < uint64(n) {
			return rep.Fail(trail.StoredHashes, first, fmt.Sprintf("the tree head keeps no root for the records [%d,%d) "+
				"(written by an earlier PDP): they cannot be checked until a PDP of this version starts, "+
				"or a checkpoint covers them", first, n))
		}
		return rep
	case !s.rootSize.Valid || s.root == nil:
		return after("keeps no root, or no size for it")
	case s.rootSize.Int64 < 0:
		return after(fmt.Sprintf("keeps a root of %d records", s.rootSize.Int64))
	case s.rootSize.Int64 > n:
		return rep.Fail(trail.Dropped, uint64(n), fmt.Sprintf("the tree head says %d records, its root is of %d", n, s.rootSize.Int64))
	case len(s.root) != tlog.HashSize:
		return after(fmt.Sprintf("keeps a root of %d bytes", len(s.root)))
	}
	size := uint64(s.rootSize.Int64)
	if h, err := tlog.TreeHash(s.rootSize.Int64, tree); err != nil || h != tlog.Hash(s.root) {
		if first < size {
			return rep.Fail(trail.Changed, first, fmt.Sprintf("the records [%d,%d) after the latest checkpoint do not hash to the root the tree head keeps "+
				"for size %d: one was changed, dropped or inserted with its leaf column, or the root was changed", first, size, size))
		}
		return rep.Fail(trail.StoredHashes, size, "the records verify against the checkpoints, but the root the tree head keeps differs from their tree")
	}
	if covered := max(first, size); covered < uint64(n) {
		return rep.Fail(trail.Inserted, covered, fmt.Sprintf("the records [%d,%d) are beyond the tree of %d records the head's root is of, "+
			"and no checkpoint covers them: inserted, or appended by a replica that does not keep the root", covered, n, size))
	}
	if size < uint64(n) {
		return rep.Fail(trail.StoredHashes, size, fmt.Sprintf("the records verify against the checkpoints, but the tree head's root is of %d records, not %d", size, n))
	}
	return rep
}
