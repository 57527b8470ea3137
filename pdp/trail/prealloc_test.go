package trail

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// crashImage copies the files of an open trail into a new directory, as a
// power cut would leave them (without Close: the preallocated zeros stay).
func crashImage(t *testing.T, dir string) string {
	t.Helper()
	img := t.TempDir()
	for _, name := range []string{recordsFile, hashesFile, checkpointsFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(img, name), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// TestPreallocatedRecordsFile: while open, the records file runs ahead of
// its records with zeros (batches are written in place and fdatasynced);
// Close cuts them off, so a closed trail ends with its last record; with
// Preallocate negative nothing is preallocated.
func TestPreallocatedRecordsFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opt   int64
		ahead bool
	}{
		{"default", 0, true},
		{"small chunks", 4096, true},
		// default off because this case checks that Preallocate < 0
		// appends and fsyncs with no zeros ahead.
		{"off", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, FileOptions{Preallocate: tc.opt})
			appendN(t, l, 0, 300) // past several 4 KiB chunks
			b := fileBytes(t, dir, recordsFile)
			data := bytes.TrimRight(b, "\x00")
			if ahead := len(b) > len(data); ahead != tc.ahead {
				t.Fatalf("records file %d bytes, %d of records: preallocated=%v, want %v", len(b), len(data), ahead, tc.ahead)
			}
			if len(data) == 0 || data[len(data)-1] != '\n' {
				t.Fatal("records do not end with a whole frame")
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if after := fileBytes(t, dir, recordsFile); !bytes.Equal(after, data) {
				t.Fatalf("after Close: %d bytes, want the %d bytes of records", len(after), len(data))
			}
		})
	}
}

// TestPreallocatedCrashRecovery: what a crash leaves in preallocated space
// is recovered without damage: zeros alone are no torn record; a last
// batch that kept some pages and lost others (zeros in the middle of a
// frame, or from a frame's start) is cut from its first torn frame; a
// torn frame a checkpoint covers is damage, as before.
func TestPreallocatedCrashRecovery(t *testing.T) {
	type image struct {
		dir    string
		vkey   string
		signer note.Signer
		offs   []int64 // frame offsets
	}
	build := func(t *testing.T, checkpointAll bool) image {
		dir := t.TempDir()
		signer, vkey := newKeys(t)
		l := openLog(t, dir, FileOptions{Signer: signer})
		appendN(t, l, 0, 20)
		if _, err := l.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 20, 10) // the batch a crash may tear
		if checkpointAll {
			if _, err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
		img := crashImage(t, dir)
		return image{img, vkey, signer, append([]int64(nil), l.offsets...)}
	}
	zero := func(t *testing.T, dir string, from, to int64) {
		b := fileBytes(t, dir, recordsFile)
		clear(b[from:to])
		if err := os.WriteFile(filepath.Join(dir, recordsFile), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name      string
		anchorAll bool
		tear      func(t *testing.T, im image)
		size      uint64 // records kept
		torn      bool   // bytes reported cut
		damaged   bool
	}{
		{"zeros only", false, func(*testing.T, image) {}, 30, false, false},
		{"hole inside a frame", false, func(t *testing.T, im image) {
			zero(t, im.dir, im.offs[25]+20, im.offs[26]+5)
		}, 25, true, false},
		{"hole from a frame's start", false, func(t *testing.T, im image) {
			zero(t, im.dir, im.offs[27], im.offs[28])
		}, 27, false, false},
		{"torn frame under a checkpoint", true, func(t *testing.T, im image) {
			zero(t, im.dir, im.offs[25]+20, im.offs[26]+5)
		}, 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im := build(t, tc.anchorAll)
			tc.tear(t, im)
			l := openLog(t, im.dir, FileOptions{Signer: im.signer})
			if tc.damaged {
				if l.Damaged() == nil {
					t.Fatal("a torn anchored frame was not found")
				}
				return
			}
			if l.Damaged() != nil {
				t.Fatal(l.Damaged())
			}
			if l.Size() != tc.size {
				t.Fatalf("%d records after recovery, want %d", l.Size(), tc.size)
			}
			if torn := l.Recovery().TruncatedBytes > 0; torn != tc.torn {
				t.Fatalf("recovery %+v: torn bytes reported=%v, want %v", l.Recovery(), torn, tc.torn)
			}
			if b := fileBytes(t, im.dir, recordsFile); int64(len(b)) != l.end {
				t.Fatalf("after open the records file holds %d bytes, its records end at %d: the zeros stayed", len(b), l.end)
			}
			appendN(t, l, int(tc.size), 3)
			if _, err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			rep, err := l.Verify(context.Background(), im.vkey, 0, l.Size())
			if err != nil || !rep.OK {
				t.Fatalf("verify after recovery: %v %v", rep, err)
			}
		})
	}
}
