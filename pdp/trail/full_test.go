package trail

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFileLogRecoversFromFullDisk fills the file system under a real
// FileLog (a small tmpfs; root only): appends fail while it is full, the
// files are cut back to the acknowledged records, and once space is freed
// appends succeed again without reopening, the tree matching the disk
// (Verify passes, and after a reopen too).
func TestFileLogRecoversFromFullDisk(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(mnt, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("SKIPPED: cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
	dir := filepath.Join(mnt, "trail")
	signer, vkey := newKeys(t)
	l, err := OpenFile(dir, FileOptions{Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() }) // before the unmount
	ctx := context.Background()
	appendN(t, l, 0, 10)

	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = f.Write(make([]byte, 4096))
	}
	_ = f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	var failed error
	n := 10
	for i := 0; i < 1000 && failed == nil; i++ { // a file's last page may take a few more
		if _, failed = l.Append(ctx, mkRec(n)); failed == nil {
			n++
		}
	}
	if !errors.Is(failed, syscall.ENOSPC) {
		t.Fatalf("append with the disk full: %v, want ENOSPC", failed)
	}
	if got := l.Size(); got != uint64(n) {
		t.Fatalf("size %d after the failed append, want %d", got, n)
	}
	if _, err := l.Append(ctx, mkRec(n)); err == nil {
		t.Fatal("append succeeded with the disk still full")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	seqs, err := l.Append(ctx, mkRec(n))
	if err != nil {
		t.Fatalf("append after space returned: %v", err)
	}
	if seqs[0] != uint64(n) {
		t.Errorf("seq %d after recovery, want %d", seqs[0], n)
	}
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	for _, reopen := range []bool{false, true} {
		if reopen {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if l, err = OpenFile(dir, FileOptions{Signer: signer}); err != nil {
				t.Fatal(err)
			}
			if rc := l.Recovery(); rc.TruncatedBytes != 0 {
				t.Errorf("reopen cut %d bytes: the failed write was not cut back", rc.TruncatedBytes)
			}
		}
		rep, err := l.Verify(ctx, vkey, 0, l.Size())
		if err != nil || !rep.OK || rep.To != uint64(n+1) || rep.Unanchored != 0 {
			t.Errorf("reopen %t: verify %+v %v, want ok over %d records, all anchored", reopen, rep, err, n+1)
		}
	}
}
