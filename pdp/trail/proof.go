package trail

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrProof is returned by CheckProof for a proof that does not hold.
var ErrProof = errors.New("trail: inclusion proof does not verify")

// Proof shows that one record is leaf LeafIndex of the tree a checkpoint signs.
type Proof struct {
	RecordHash tlog.Hash   `json:"record_hash"`
	LeafIndex  uint64      `json:"leaf_index"`
	TreeSize   uint64      `json:"tree_size"`
	Hashes     []tlog.Hash `json:"hashes"`
}

// Prove returns the inclusion proof of record seq in the tree signed by
// checkpoint, which must be one this log issued (its root is rechecked).
func (l *FileLog) Prove(seq uint64, checkpoint []byte) (Proof, error) {
	head, err := unverifiedHead(checkpoint)
	if err != nil {
		return Proof{}, err
	}
	if seq >= head.Size {
		return Proof{}, fmt.Errorf("%w: record %d is not in a tree of size %d", ErrNotFound, seq, head.Size)
	}
	if head.Size > l.Size() {
		return Proof{}, fmt.Errorf("trail: checkpoint size %d beyond log size %d", head.Size, l.Size())
	}
	r := l.sideReader(int64(head.Size))
	root, err := tlog.TreeHash(int64(head.Size), r)
	if err != nil {
		return Proof{}, fmt.Errorf("trail: tree hash: %w", err)
	}
	if root != head.Root {
		return Proof{}, fmt.Errorf("trail: checkpoint root does not match this log's tree of size %d", head.Size)
	}
	leaf, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(seq))})
	if err != nil {
		return Proof{}, err
	}
	hashes, err := tlog.ProveRecord(int64(head.Size), int64(seq), r)
	if err != nil {
		return Proof{}, fmt.Errorf("trail: prove record %d: %w", seq, err)
	}
	return Proof{RecordHash: leaf[0], LeafIndex: seq, TreeSize: head.Size, Hashes: hashes}, nil
}

// CheckProof checks, with the public key alone, that rec is in the tree the
// signed checkpoint commits to, as p claims.
func CheckProof(verifierKey string, checkpoint []byte, rec Record, p Proof) error {
	head, err := OpenCheckpoint(verifierKey, checkpoint)
	if err != nil {
		return err
	}
	leaf, err := LeafHash(rec)
	if err != nil {
		return err
	}
	switch {
	case leaf != p.RecordHash:
		return fmt.Errorf("%w: record hash differs from the proof's", ErrProof)
	case rec.Seq != p.LeafIndex:
		return fmt.Errorf("%w: record seq %d, proof leaf %d", ErrProof, rec.Seq, p.LeafIndex)
	case p.TreeSize != head.Size:
		return fmt.Errorf("%w: proof for tree size %d, checkpoint size %d", ErrProof, p.TreeSize, head.Size)
	}
	if err := tlog.CheckRecord(p.Hashes, int64(head.Size), head.Root, int64(rec.Seq), leaf); err != nil {
		return fmt.Errorf("%w: %v", ErrProof, err)
	}
	return nil
}
