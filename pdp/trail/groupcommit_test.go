package trail

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestSideFileFrontier: appends of every batch size, from many goroutines
// and across a reopen, leave exactly the stored hashes of the records in
// hashes.bin (the committer reads the tree's right edge from memory, not
// from the file).
func TestSideFileFrontier(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, FileOptions{})
	ctx := context.Background()
	n := 0
	for size := 1; size <= 40; size++ {
		recs := make([]Record, size)
		for i := range recs {
			recs[i] = mkRec(n)
			n++
		}
		if _, err := l.Append(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				if _, err := l.Append(ctx, mkRec(10000+g*100+i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, FileOptions{})
	for i := range 37 {
		if _, err := l.Append(ctx, mkRec(20000+i)); err != nil {
			t.Fatal(err)
		}
	}
	var tree memTree
	if err := l.Scan(0, l.Size(), func(rec Record) error {
		leaf, err := LeafHash(rec)
		if err != nil {
			return err
		}
		return tree.add(leaf)
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, hashesFile))
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, h := range tree.hashes {
		want = append(want, h[:]...)
	}
	if int64(len(tree.hashes)) != tlog.StoredHashCount(tree.n) || !bytes.Equal(raw, want) {
		t.Fatalf("hashes.bin holds %d bytes, not the %d stored hashes of %d records", len(raw), len(tree.hashes), tree.n)
	}
}
