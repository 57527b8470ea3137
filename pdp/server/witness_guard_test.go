package server

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWitnessLeavesForeignFile: a witness file that holds no note of the
// trail's at its end (trail.witness_file pointed at a config file, at
// notes) is never cut, small or large: it is left byte-identical and the
// writer reports "move the file away" (LastCheckpointError, at Error).
func TestWitnessLeavesForeignFile(t *testing.T) {
	r := newWitnessRig(t, time.Hour)
	defer r.fl.Close()
	r.add(1)
	first := r.checkpoint()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"small config", []byte("listen: 127.0.0.1:8080\ntrail:\n  dir: /var/lib/pdp\n")},
		{"small without a final newline", []byte("remember to rotate the keys")},
		{"one line", []byte("x\n")},
		{"large", bytes.Repeat([]byte("a line of someone's notes\n"), 400)},
		{"notes after a checkpoint", append(bytes.Clone(first), "and some notes\n"...)},
		{"another origin's torn note", append(bytes.Clone(first), "other/trail\n7\n"...)},
		{"the only note made unparsable by what follows", append(bytes.Clone(first), "— "...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(r.file, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			r.logs.Reset()
			ws := r.store()
			r.add(1)
			r.checkpoint()
			ws.sync()
			stop(ws)
			if err := ws.LastCheckpointError(); err == nil || !strings.Contains(err.Error(), "move the file away") {
				t.Fatalf("LastCheckpointError %v, want move the file away", err)
			}
			if got, _ := os.ReadFile(r.file); !bytes.Equal(got, tc.data) {
				t.Fatalf("the file was changed to %q", got)
			}
			if !strings.Contains(r.logs.String(), `"level":"ERROR"`) || strings.Contains(r.logs.String(), "cut a torn note") {
				t.Fatalf("log: %s", r.logs.String())
			}
		})
	}
}

// lockWitness takes the witness file's advisory lock as another writer
// would; the returned function drops it.
func lockWitness(t *testing.T, path string) (*os.File, func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return f, func() { f.Close() }
}

// TestWitnessLockAndRecheckAfterFailure: while another process holds the
// file's lock the writer appends and cuts nothing (errWitnessLocked) and
// keeps the checkpoint for its next wake; torn bytes left meanwhile (a
// failed append whose cut back failed too) are checked and cut before the
// next append, so no note is glued onto them. A file that ends part way
// through a line is not appended to; the next attempt cuts it.
func TestWitnessLockAndRecheckAfterFailure(t *testing.T) {
	r := newWitnessRig(t, time.Hour)
	defer r.fl.Close()
	ws := r.store()
	defer stop(ws)
	r.add(1)
	r.checkpoint()
	ws.sync()
	before, err := os.ReadFile(r.file)
	if err != nil {
		t.Fatal(err)
	}

	lf, unlock := lockWitness(t, r.file)
	r.add(1)
	second := r.checkpoint()
	ws.sync()
	if err := ws.LastCheckpointError(); !errors.Is(err, errWitnessLocked) {
		t.Fatalf("LastCheckpointError %v, want errWitnessLocked", err)
	}
	if got, _ := os.ReadFile(r.file); !bytes.Equal(got, before) {
		t.Fatalf("the writer changed the locked file: %q", got[len(before):])
	}
	// Torn bytes of a note of ours, ending in a newline.
	torn := second[:bytes.IndexByte(second, '\n')+1]
	torn = append(torn, "2\n"...)
	if _, err := lf.Write(torn); err != nil {
		t.Fatal(err)
	}
	unlock()
	ws.sync() // the kept checkpoint, once the lock is free
	if err := ws.LastCheckpointError(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(r.sizes()); got != "[1 2]" {
		t.Fatalf("witnessed %s, want [1 2]", got)
	}

	// A file that ends part way through a line, with the end checked.
	whole, _ := os.ReadFile(r.file)
	if err := os.WriteFile(r.file, append(bytes.Clone(whole), "pdp/tr"...), 0o600); err != nil {
		t.Fatal(err)
	}
	r.add(1)
	r.checkpoint()
	ws.sync()
	if err := ws.LastCheckpointError(); err == nil || !strings.Contains(err.Error(), "does not end in a whole line") {
		t.Fatalf("LastCheckpointError %v, want does not end in a whole line", err)
	}
	r.add(1)
	r.checkpoint()
	ws.sync()
	if err := ws.LastCheckpointError(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(r.sizes()); got != "[1 2 4]" {
		t.Fatalf("witnessed %s, want [1 2 4]", got)
	}
}

// TestWitnessRestartNoDuplicate: a restart with no new records appends
// nothing (the file already ends in that checkpoint); a checkpoint
// smaller than the file's last (a trail restored, or failed over to a
// replica behind it) is still appended, and later ones after it.
func TestWitnessRestartNoDuplicate(t *testing.T) {
	r := newWitnessRig(t, time.Hour)
	defer r.fl.Close()
	r.add(2)
	two := r.checkpoint()
	ws := r.store()
	ws.offer(two)
	ws.sync()
	stop(ws)
	want, err := os.ReadFile(r.file)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // restarts
		ws = r.store()
		r.checkpoint()
		ws.sync()
		stop(ws)
		if err := ws.LastCheckpointError(); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(r.file); !bytes.Equal(got, want) {
			t.Fatalf("restart appended %q", got[len(want):])
		}
	}

	r.add(1)
	three := r.checkpoint()
	if err := os.WriteFile(r.file, three, 0o600); err != nil {
		t.Fatal(err)
	}
	ws = r.store()
	defer stop(ws)
	ws.offer(two)
	ws.sync()
	r.add(1)
	r.checkpoint()
	ws.sync()
	if err := ws.LastCheckpointError(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(r.sizes()); got != "[3 2 4]" {
		t.Fatalf("witnessed %s, want [3 2 4]", got)
	}
}
