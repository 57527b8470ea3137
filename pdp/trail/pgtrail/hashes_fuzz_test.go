package pgtrail

import (
	"bytes"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// FuzzRowHashes: the decoder of a row's leaf and up columns never panics,
// takes only the lengths its seq calls for, and puts back exactly what
// packUp packed, at the indexes tlog numbers them.
func FuzzRowHashes(f *testing.F) {
	f.Add(int64(0), make([]byte, 32), []byte(nil))
	f.Add(int64(7), make([]byte, 32), make([]byte, 96))
	f.Add(int64(5), make([]byte, 31), make([]byte, 32))
	f.Add(int64(-1), []byte{1}, []byte{2})
	f.Add(int64(1)<<62-1, make([]byte, 32), make([]byte, 62*32))
	f.Fuzz(func(t *testing.T, seq int64, leaf, up []byte) {
		if seq < 0 || seq >= 1<<62 {
			seq &= 1<<62 - 1
		}
		var got []tlog.Hash
		var idxs []int64
		err := rowHashes(seq, leaf, up, func(idx int64, h tlog.Hash) { idxs, got = append(idxs, idx), append(got, h) })
		t0 := upLevels(seq)
		if ok := len(leaf) == tlog.HashSize && len(up) == t0*tlog.HashSize; ok != (err == nil) {
			t.Fatalf("seq %d, leaf %d bytes, up %d bytes: err %v", seq, len(leaf), len(up), err)
		}
		if err != nil {
			if len(got) > 0 {
				t.Fatal("hashes put from a malformed row")
			}
			return
		}
		if len(got) != 1+t0 {
			t.Fatalf("%d hashes, want %d", len(got), 1+t0)
		}
		for l, idx := range idxs {
			if idx != tlog.StoredHashIndex(l, seq>>l) || hashHome(idx) != seq {
				t.Fatalf("hash %d of record %d at index %d", l, seq, idx)
			}
		}
		if !bytes.Equal(got[0][:], leaf) || !bytes.Equal(packUp(got), up) && len(up) > 0 {
			t.Fatal("the hashes put are not the columns")
		}
	})
}
