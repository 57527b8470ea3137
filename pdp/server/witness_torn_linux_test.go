//go:build linux

package server

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestWitnessFailedAppendCutBack: an append that the file system stops
// part way (here RLIMIT_FSIZE, a short write then EFBIG, as a full disk
// would) is cut off again, so the file ends on a whole note; it is the
// store's LastCheckpointError, and the next append, once there is room,
// lands on a whole note.
func TestWitnessFailedAppendCutBack(t *testing.T) {
	r := newWitnessRig(t, time.Hour)
	defer r.fl.Close()
	ws := r.store()
	defer stop(ws)
	r.add(1)
	r.checkpoint()
	ws.sync()
	r.add(1)
	r.checkpoint()
	ws.sync()
	before, err := os.ReadFile(r.file)
	if err != nil {
		t.Fatal(err)
	}
	r.add(1)
	third := r.checkpoint() // stored before the limit: only the witness file is written under it
	// The hook handed third to the writer already; hand it again under
	// the limit, after reverting the file to before it.
	ws.sync()
	if err := os.WriteFile(r.file, before, 0o600); err != nil {
		t.Fatal(err)
	}
	ws.wrote, ws.last = true, 2 // what the writer had appended before
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skip(err)
	}
	lim := old
	lim.Cur = uint64(len(before) + 40)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skip(err)
	}
	ws.offer(third)
	ws.sync()
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err := ws.LastCheckpointError(); err == nil {
		t.Fatal("no LastCheckpointError after a failed append")
	}
	if after, _ := os.ReadFile(r.file); !bytes.Equal(after, before) {
		t.Fatalf("the failed append was left in the file: %q", after[len(before):])
	}
	ws.offer(third)
	ws.sync()
	if err := ws.LastCheckpointError(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(r.sizes()); got != "[1 2 3]" {
		t.Fatalf("witnessed %s, want [1 2 3]", got)
	}
}
