package trail

import (
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/tlog"
)

// hashFile is the side file of stored tree hashes: hash i at offset 32*i.
// Only the committer goroutine (or Open, before it starts) writes to it.
type hashFile struct {
	f *os.File
	n int64 // hashes in the file
	// frontier holds the stored hashes the next appends read: the roots of
	// the complete subtrees on the tree's right edge, at most one per
	// level, by stored-hash index. With it an append reads nothing from
	// the file; it is rebuilt after every append and dropped on truncate.
	frontier map[int64]tlog.Hash
}

// ReadHashes implements tlog.HashReader over the hashes already in the file.
func (h *hashFile) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		if idx < 0 || idx >= h.n {
			return nil, fmt.Errorf("trail: stored hash %d not in side file (%d hashes)", idx, h.n)
		}
		if v, ok := h.frontier[idx]; ok {
			out[i] = v
			continue
		}
		if _, err := h.f.ReadAt(out[i][:], idx*tlog.HashSize); err != nil {
			return nil, fmt.Errorf("trail: read stored hash %d: %w", idx, err)
		}
	}
	return out, nil
}

// appendHashes writes the stored hashes for records [n0, n0+len(leaves)),
// where n0 is the record count the file currently covers.
func (h *hashFile) appendHashes(n0 int64, leaves []tlog.Hash) error {
	if want := tlog.StoredHashCount(n0); h.n != want {
		return fmt.Errorf("trail: side file holds %d hashes, want %d for %d records", h.n, want, n0)
	}
	var pending []tlog.Hash
	r := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, idx := range indexes {
			if idx >= h.n {
				out[i] = pending[idx-h.n]
				continue
			}
			hs, err := h.ReadHashes([]int64{idx})
			if err != nil {
				return nil, err
			}
			out[i] = hs[0]
		}
		return out, nil
	})
	for i, leaf := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(n0+int64(i), leaf, r)
		if err != nil {
			return fmt.Errorf("trail: stored hashes for record %d: %w", n0+int64(i), err)
		}
		pending = append(pending, hs...)
	}
	buf := make([]byte, 0, len(pending)*tlog.HashSize)
	for _, p := range pending {
		buf = append(buf, p[:]...)
	}
	if _, err := h.f.WriteAt(buf, h.n*tlog.HashSize); err != nil {
		h.frontier = nil
		return fmt.Errorf("trail: write side file: %w", err)
	}
	frontier := make(map[int64]tlog.Hash, 64)
	n1 := n0 + int64(len(leaves))
	for level := 0; n1>>level > 0; level++ {
		if (n1>>level)&1 == 0 {
			continue
		}
		idx := tlog.StoredHashIndex(level, n1>>level-1)
		if idx >= h.n {
			frontier[idx] = pending[idx-h.n]
		} else if hs, err := h.ReadHashes([]int64{idx}); err == nil {
			frontier[idx] = hs[0]
		}
	}
	h.frontier = frontier
	h.n += int64(len(pending))
	return nil
}

// truncate cuts the file back to the hashes of the first n records.
func (h *hashFile) truncate(records int64) error {
	h.frontier = nil
	want := tlog.StoredHashCount(records)
	if err := h.f.Truncate(want * tlog.HashSize); err != nil {
		return fmt.Errorf("trail: truncate side file: %w", err)
	}
	h.n = want
	return nil
}

// memHashes is an in-memory tlog.HashReader used by Verify.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		if idx < 0 || idx >= int64(len(m)) {
			return nil, fmt.Errorf("trail: hash %d out of range", idx)
		}
		out[i] = m[idx]
	}
	return out, nil
}

// memTree builds the stored hashes of a tree in memory, one leaf at a time.
type memTree struct {
	hashes memHashes
	n      int64
}

func (t *memTree) add(leaf tlog.Hash) error {
	hs, err := tlog.StoredHashesForRecordHash(t.n, leaf, t.hashes)
	if err != nil {
		return err
	}
	t.hashes = append(t.hashes, hs...)
	t.n++
	return nil
}
