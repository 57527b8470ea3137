package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ciampdp/pdp/pdp/trail"
)

// witnessRig is a file trail with a witness file, and what the tests need
// to look at both.
type witnessRig struct {
	t      testing.TB
	fl     *trail.FileLog
	signer note.Signer
	vkey   string
	file   string
	logs   *bytes.Buffer
	n      int
}

func newWitnessRig(t testing.TB, interval time.Duration) *witnessRig {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "pdp/trail")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	fl, err := trail.OpenFile(t.TempDir(), trail.FileOptions{Origin: "pdp/trail", Signer: signer, CheckpointInterval: interval})
	if err != nil {
		t.Fatal(err)
	}
	return &witnessRig{t: t, fl: fl, signer: signer, vkey: vkey, file: filepath.Join(t.TempDir(), "w"), logs: new(bytes.Buffer)}
}

// store wraps the trail with a witness writer (replacing any earlier one
// as the trail's checkpoint hook).
func (r *witnessRig) store() *witnessedStore {
	r.t.Helper()
	st, err := witnessStore(r.fl, TrailConfig{WitnessFile: r.file, Origin: "pdp/trail"}, r.vkey, slog.New(slog.NewJSONHandler(r.logs, nil)))
	if err != nil {
		r.t.Fatal(err)
	}
	return st.(*witnessedStore)
}

// stop ends ws's writer without closing the trail.
func stop(ws *witnessedStore) {
	close(ws.quit)
	<-ws.done
}

func (r *witnessRig) add(k int) {
	r.t.Helper()
	for range k {
		rec := trail.Record{Kind: "decision", ID: fmt.Sprintf("d-%d", r.n), Time: time.Unix(int64(r.n), 0).UTC(), Body: json.RawMessage(`{}`)}
		if _, err := r.fl.Append(context.Background(), rec); err != nil {
			r.t.Fatal(err)
		}
		r.n++
	}
}

func (r *witnessRig) checkpoint() []byte {
	r.t.Helper()
	cp, err := r.fl.Checkpoint()
	if err != nil {
		r.t.Fatal(err)
	}
	return cp
}

// sizes are the sizes of the witness file's checkpoints, each checked
// with the trail's key; a chunk that is not one fails the test.
func (r *witnessRig) sizes() []uint64 {
	r.t.Helper()
	data, err := os.ReadFile(r.file)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	cps, err := trail.ParseWitnessFile(data)
	if err != nil {
		r.t.Fatalf("%q: %v", data, err)
	}
	var out []uint64
	for _, c := range cps {
		if c.Err != nil {
			r.t.Fatalf("witness file %q: %v", data, c.Err)
		}
		h, err := trail.OpenCheckpoint(r.vkey, c.Signed)
		if err != nil {
			r.t.Fatal(err)
		}
		out = append(out, h.Size)
	}
	return out
}

// TestWitnessRefusesUncheckedCheckpoints: a checkpoint handed to the
// writer that does not check with the trail's verifier key, is of another
// origin or of more records than the trail holds (a planted row of 2^62)
// is not appended: it is the store's LastCheckpointError (the failing
// gauge) and logged at Error, and the next real checkpoint is appended
// (a planted size does not make the writer skip it).
func TestWitnessRefusesUncheckedCheckpoints(t *testing.T) {
	r := newWitnessRig(t, time.Hour)
	defer r.fl.Close()
	ws := r.store()
	defer stop(ws)
	fskey, _, _ := note.GenerateKey(rand.Reader, "pdp/trail")
	foreign, _ := note.NewSigner(fskey)
	sign := func(h trail.TreeHead, s note.Signer) []byte {
		signed, err := h.Sign(s)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	r.add(3)
	tests := []struct {
		name, want string
		signed     []byte
	}{
		{"foreign key", "does not check", sign(trail.TreeHead{Origin: "pdp/trail", Size: 3, Root: tlog.Hash{1}}, foreign)},
		{"planted size", "more records than the trail holds", sign(trail.TreeHead{Origin: "pdp/trail", Size: 1 << 62, Root: tlog.Hash{1}}, r.signer)},
		{"other origin", "another origin", sign(trail.TreeHead{Origin: "elsewhere", Size: 3, Root: tlog.Hash{1}}, r.signer)},
		{"malformed", "does not check", []byte("pdp/trail\n3\nAAAA\n\n\u2014 pdp/trail x\n")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.logs.Reset()
			ws.offer(tc.signed)
			ws.sync()
			if err := ws.LastCheckpointError(); err == nil {
				t.Fatal("no LastCheckpointError")
			}
			if !strings.Contains(r.logs.String(), `"level":"ERROR"`) || !strings.Contains(r.logs.String(), tc.want) {
				t.Fatalf("log: %s, want an Error with %q", r.logs.String(), tc.want)
			}
			if got := r.sizes(); got != nil {
				t.Fatalf("appended: %v", got)
			}
		})
	}
	r.checkpoint()
	ws.sync()
	if err := ws.LastCheckpointError(); err != nil {
		t.Fatalf("after a real checkpoint: %v", err)
	}
	if got := fmt.Sprint(r.sizes()); got != "[3]" {
		t.Fatalf("witnessed %s, want [3]", got)
	}
}

// TestWitnessCutsTornTail: a witness file whose last note was torn (cut
// at any byte: a crash before fsync, a full disk) is cut back to its last
// whole note, logged at Error, before the writer's first append, so the
// file parses whole again; a tail too long to be a torn note is left
// alone and refused.
func TestWitnessCutsTornTail(t *testing.T) {
	r := newWitnessRig(t, time.Hour)
	defer r.fl.Close()
	r.add(1)
	first := r.checkpoint()
	r.add(1)
	second := r.checkpoint()
	r.add(1)
	for k := 1; k < len(second); k++ {
		if err := os.WriteFile(r.file, append(bytes.Clone(first), second[:k]...), 0o600); err != nil {
			t.Fatal(err)
		}
		r.logs.Reset()
		ws := r.store()
		r.checkpoint() // of 3 records
		ws.sync()
		stop(ws)
		if err := ws.LastCheckpointError(); err != nil {
			t.Fatalf("cut at %d: %v", k, err)
		}
		if got := fmt.Sprint(r.sizes()); got != "[1 3]" {
			t.Fatalf("cut at %d: witnessed %s, want [1 3]", k, got)
		}
		if !strings.Contains(r.logs.String(), `"level":"ERROR","msg":"decision trail: cut a torn note`) {
			t.Fatalf("cut at %d: log %s", k, r.logs.String())
		}
	}

	junk := append(bytes.Clone(first), bytes.Repeat([]byte("not a checkpoint\n"), 300)...)
	if err := os.WriteFile(r.file, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	ws := r.store()
	r.checkpoint()
	ws.sync()
	stop(ws)
	if err := ws.LastCheckpointError(); err == nil || !strings.Contains(err.Error(), "move the file away") {
		t.Fatalf("a long tail that is not a checkpoint: %v", err)
	}
	if data, _ := os.ReadFile(r.file); !bytes.Equal(data, junk) {
		t.Fatal("the file was changed")
	}
}

// TestWitnessSignsNoExtraCheckpoint: the witness appends the checkpoints
// the store's own loop makes and signs none of its own: with records
// arriving all along, the store holds no more checkpoints with the
// witness on than its ticks allow (one per trail.checkpoint_interval,
// and Close's), as with it off, and every checkpoint appended is one the
// store holds.
func TestWitnessSignsNoExtraCheckpoint(t *testing.T) {
	const interval = 10 * time.Millisecond
	run := func(witness bool) (stored int, ticks int, witnessed []uint64) {
		r := newWitnessRig(t, interval)
		var st TrailStore = r.fl
		if witness {
			st = r.store()
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- st.Run(ctx) }()
		for time.Since(start) < 300*time.Millisecond {
			r.add(1)
			time.Sleep(time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		cps := r.fl.Checkpoints()
		inStore := make(map[uint64]bool)
		for _, c := range cps {
			h, _ := trail.UnverifiedHead(c)
			inStore[h.Size] = true
		}
		if witness {
			witnessed = r.sizes()
			for _, n := range witnessed {
				if !inStore[n] {
					t.Fatalf("witnessed a checkpoint of %d records the store does not hold", n)
				}
			}
			if len(witnessed) == 0 || witnessed[len(witnessed)-1] != uint64(r.n) {
				t.Fatalf("witnessed %v, want the last of %d records", witnessed, r.n)
			}
		}
		return len(cps), int(elapsed / interval), witnessed
	}
	off, offTicks, _ := run(false)
	on, onTicks, witnessed := run(true)
	t.Logf("stored checkpoints: witness off %d (%d ticks), on %d (%d ticks); witnessed %d", off, offTicks, on, onTicks, len(witnessed))
	for _, c := range []struct{ n, ticks int }{{off, offTicks}, {on, onTicks}} {
		if c.n > c.ticks+1 {
			t.Fatalf("%d stored checkpoints in %d ticks: more than one per tick and Close's", c.n, c.ticks)
		}
	}
}

// TestWitnessIODoesNotHang: a witness file whose I/O blocks (a FIFO no
// one reads: a hung network mount) holds up neither the failing gauge
// (LastCheckpointError) nor Close, which gives up on the final append
// after closeWait and says so at Error.
func TestWitnessIODoesNotHang(t *testing.T) {
	r := newWitnessRig(t, time.Hour)
	if err := syscall.Mkfifo(r.file, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	ws := r.store()
	ws.closeWait = 200 * time.Millisecond
	r.add(2)
	r.checkpoint() // the writer blocks on the file
	time.Sleep(50 * time.Millisecond)
	within := func(what string, d time.Duration, fn func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { fn(); close(done) }()
		select {
		case <-done:
		case <-time.After(d):
			t.Fatalf("%s did not return within %v", what, d)
		}
	}
	within("LastCheckpointError", time.Second, func() { _ = ws.LastCheckpointError() })
	start := time.Now()
	within("Close", 5*time.Second, func() {
		if err := ws.Close(); err != nil {
			t.Error(err)
		}
	})
	if d := time.Since(start); d < ws.closeWait {
		t.Fatalf("Close returned after %v, before giving up", d)
	}
	if !strings.Contains(r.logs.String(), "gave up waiting for the final append") {
		t.Fatalf("log: %s", r.logs.String())
	}
	// The writer stays blocked in open(2) on the FIFO until the test
	// binary exits.
}
