package pgtrail

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/ciampdp/pdp/pdp/trail"
)

// The stored hashes as Verify sees them (layout 1, hashes.go): each row's
// leaf and up columns are the stored hashes of the seq its canonical bytes
// carry (the seq column only when those are unreadable), so that rows
// renumbered with their columns still show where their hashes belong.
// When two rows claim one seq, the first whose up column has the length
// that seq calls for wins (a forged row rarely has it right).
//
// A level-0 hash is the leaf column itself, no second copy: it cannot
// tell by itself that a leaf column was rewritten with its body. The
// level-1 hash in the up column of the pair's odd record can: a pair
// whose two leaf columns do not hash to it gives both records a stored
// leaf no record matches (checkPairs), so that VerifyEvidence reports the
// pair's first record as changed or its stored hashes as wrong. Higher
// levels are compared with the tree of the records once these verify
// (wrongInterior), and the whole tree with the root the head keeps
// (checkRoot): a record no later one pairs with yet, or the last records
// deleted with the head cut to match, is told by that alone.

// storedHashes takes the stored hashes row r (whose frame is f) holds.
func (s *pgSnapshot) storedHashes(r *pgRow, f trail.Frame) {
	k := f.Seq
	if k < 0 {
		k = r.seq
	}
	if k < 0 || k >= s.head {
		return // beyond the tree: reported as inserted
	}
	t := upLevels(k)
	upOK := len(r.up) == t*tlog.HashSize
	if s.claimed[k] && (s.upOK[k] || !upOK) {
		return
	}
	s.claimed[k], s.upOK[k] = true, upOK
	idx := tlog.StoredHashIndex(0, k)
	s.have[idx] = len(r.leaf) == tlog.HashSize
	if s.have[idx] {
		s.hashes[idx] = tlog.Hash(r.leaf)
	}
	for l := range t {
		s.have[idx+1+int64(l)] = upOK
		if upOK {
			s.hashes[idx+1+int64(l)] = tlog.Hash(r.up[l*tlog.HashSize : (l+1)*tlog.HashSize])
		}
	}
}

// checkPairs counts the stored hashes read and the malformed up columns,
// and blanks the stored leaves of the pairs their level-1 hash disowns.
func (s *pgSnapshot) checkPairs() {
	for k := range s.head {
		if s.claimed[k] && !s.upOK[k] {
			s.badRows++
		}
	}
	for _, ok := range s.have {
		if ok {
			s.hashRows++
		}
	}
	for k := int64(1); k < s.head; k += 2 {
		i0, i1 := tlog.StoredHashIndex(0, k-1), tlog.StoredHashIndex(0, k)
		if s.have[i0] && s.have[i1] && s.have[i1+1] && tlog.NodeHash(s.hashes[i0], s.hashes[i1]) != s.hashes[i1+1] {
			s.hashes[i0], s.hashes[i1] = tlog.Hash{}, tlog.Hash{} // no record hashes to zero
		}
	}
}

// wrongInterior computes the tree of the records' leaves (called once
// the records verified) and finds the first stored hash that differs from
// it: the seq of the record holding it and its level.
func (s *pgSnapshot) wrongInterior() (tree treeHashes, seq int64, level int, bad bool) {
	tree = make(treeHashes, 0, len(s.hashes))
	for i := range s.head {
		hs, err := tlog.StoredHashesForRecordHash(i, s.frames[i].Leaf, tree)
		if err != nil {
			return nil, i, 0, true
		}
		tree = append(tree, hs...)
	}
	for idx, h := range tree {
		if s.have[idx] && h != s.hashes[idx] {
			level, _ := tlog.SplitStoredHashIndex(int64(idx))
			return tree, hashHome(int64(idx)), level, true
		}
	}
	return tree, 0, 0, false
}

// treeHashes is a tlog.HashReader over hashes in memory.
type treeHashes []tlog.Hash

func (m treeHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		if idx < 0 || idx >= int64(len(m)) {
			return nil, fmt.Errorf("stored hash %d beyond %d", idx, len(m))
		}
		out[i] = m[idx]
	}
	return out, nil
}

// loadLegacyHashes reads the stored hashes of a trail in the layout before
// version 1 from trail_hashes, as Verify read them then.
func (s *pgSnapshot) loadLegacyHashes(ctx context.Context, tx pgx.Tx, q pgSQL) error {
	rows, err := tx.Query(ctx, q.legacyAll)
	if err != nil {
		return fmt.Errorf("read stored hashes: %w", err)
	}
	limit := int64(len(s.hashes))
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
