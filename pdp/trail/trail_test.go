package trail

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

func newKeys(t testing.TB) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "northbank-pdp")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

func openLog(t testing.TB, dir string, opts FileOptions) *FileLog {
	t.Helper()
	l, err := OpenFile(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

var epoch = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func mkRec(i int) Record {
	return Record{
		Kind: "decision",
		ID:   fmt.Sprintf("d-%04d", i),
		Time: epoch.Add(time.Duration(i) * time.Millisecond),
		Body: json.RawMessage(fmt.Sprintf(`{"i": %d, "effect": "allow", "note": "<&>"}`, i)),
	}
}

func appendN(t testing.TB, l *FileLog, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		seqs, err := l.Append(context.Background(), mkRec(i))
		if err != nil {
			t.Fatal(err)
		}
		if seqs[0] != uint64(i) {
			t.Fatalf("record %d got seq %d", i, seqs[0])
		}
	}
}

func mustVerify(t *testing.T, l *FileLog, vkey string) Report {
	t.Helper()
	rep, err := l.Verify(context.Background(), vkey, 0, ^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestAppendGetScan(t *testing.T) {
	l := openLog(t, t.TempDir(), FileOptions{})
	appendN(t, l, 0, 3)
	seqs, err := l.Append(context.Background(), mkRec(3), mkRec(4), mkRec(5))
	if err != nil || fmt.Sprint(seqs) != "[3 4 5]" {
		t.Fatalf("batch append: %v %v", seqs, err)
	}
	if l.Size() != 6 {
		t.Fatalf("size %d", l.Size())
	}
	for i := range 6 {
		got, err := l.Get(uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		want := mkRec(i)
		if got.Seq != uint64(i) || got.ID != want.ID || !got.Time.Equal(want.Time) {
			t.Fatalf("Get(%d) = %+v", i, got)
		}
		var body map[string]any
		if err := json.Unmarshal(got.Body, &body); err != nil || body["i"] != float64(i) {
			t.Fatalf("Get(%d) body %s", i, got.Body)
		}
	}
	if _, err := l.Get(6); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get past end: %v", err)
	}
	var ids []string
	if err := l.Scan(2, 5, func(r Record) error { ids = append(ids, r.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != "[d-0002 d-0003 d-0004]" {
		t.Fatalf("scan: %v", ids)
	}
	stop := errors.New("stop")
	if err := l.Scan(0, 100, func(Record) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("scan stop: %v", err)
	}
	bad := mkRec(9)
	bad.Body = json.RawMessage(`{not json`)
	if _, err := l.Append(context.Background(), bad); err == nil {
		t.Fatal("invalid body accepted")
	}
	appendN(t, l, 6, 1) // a rejected request consumes no sequence number
}

func TestCanonicalRoundTrip(t *testing.T) {
	l := openLog(t, t.TempDir(), FileOptions{})
	rec := mkRec(0)
	rec.Time = rec.Time.In(time.FixedZone("CET", 3600))
	rec.Body = json.RawMessage("{\n  \"a\": [1, 2]\n}")
	if _, err := l.Append(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	got, err := l.Get(0)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := Canonical(rec)
	b, _ := Canonical(got)
	if !bytes.Equal(a, b) {
		t.Fatalf("canonical bytes differ:\n%s\n%s", a, b)
	}
}

func TestConcurrentAppendBatches(t *testing.T) {
	l := openLog(t, t.TempDir(), FileOptions{})
	const workers, each = 32, 40
	seen := make([]bool, workers*each)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				seqs, err := l.Append(context.Background(), mkRec(w*each+i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[seqs[0]] {
					t.Errorf("seq %d twice", seqs[0])
				}
				seen[seqs[0]] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st := l.Stats()
	if st.Records != workers*each || l.Size() != workers*each {
		t.Fatalf("stats %+v size %d", st, l.Size())
	}
	if st.Batches >= st.Records {
		t.Errorf("no batching: %+v", st)
	}
	t.Logf("%d records in %d batches", st.Records, st.Batches)
}

func TestReopenContinuesAndVerifies(t *testing.T) {
	dir := t.TempDir()
	signer, vkey := newKeys(t)
	l, err := OpenFile(dir, FileOptions{Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 0, 7)
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 7, 5)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), mkRec(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}

	l = openLog(t, dir, FileOptions{Signer: signer})
	if got := len(l.Checkpoints()); got != 2 {
		t.Fatalf("%d checkpoints, want 2 (explicit + close)", got)
	}
	if r := l.Recovery(); r != (Recovery{}) {
		t.Fatalf("clean reopen repaired %+v", r)
	}
	appendN(t, l, 12, 3)
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	rep := mustVerify(t, l, vkey)
	if !rep.OK || rep.Checkpoints != 3 || rep.Anchored != 15 || rep.To != 15 {
		t.Fatalf("verify: %+v", rep)
	}
	head, err := OpenCheckpoint(vkey, l.Checkpoints()[2])
	if err != nil || head.Origin != DefaultOrigin || head.Size != 15 {
		t.Fatalf("head %+v %v", head, err)
	}
	// Unchanged tree: the latest checkpoint is returned, not a new one.
	if _, err := l.Checkpoint(); err != nil || len(l.Checkpoints()) != 3 {
		t.Fatalf("repeat checkpoint: %v, %d", err, len(l.Checkpoints()))
	}
}

func TestTornTail(t *testing.T) {
	for name, tail := range map[string]string{
		"partial line":   "0000002a 0badf00d {\"seq\":5,\"ki",
		"bad last frame": "00000004 00000000 {}{}\n",
		"header only":    "000000",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			signer, vkey := newKeys(t)
			l := openLog(t, dir, FileOptions{Signer: signer})
			appendN(t, l, 0, 5)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(filepath.Join(dir, recordsFile), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(tail); err != nil {
				t.Fatal(err)
			}
			f.Close()

			l = openLog(t, dir, FileOptions{Signer: signer})
			if l.Damaged() != nil {
				t.Fatal(l.Damaged())
			}
			if l.Size() != 5 || l.Recovery().TruncatedBytes != int64(len(tail)) {
				t.Fatalf("size %d recovery %+v", l.Size(), l.Recovery())
			}
			appendN(t, l, 5, 2)
			if _, err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			if rep := mustVerify(t, l, vkey); !rep.OK {
				t.Fatalf("verify after repair: %v", rep)
			}
		})
	}
}

func TestSideFileBehindIsRebuilt(t *testing.T) {
	for name, keep := range map[string]int64{"lost": 0, "torn": 7*32 + 5} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			signer, vkey := newKeys(t)
			l := openLog(t, dir, FileOptions{Signer: signer})
			appendN(t, l, 0, 9)
			if _, err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 9, 4)
			// Simulate a crash: no Close, so no final checkpoint.
			dropLock(t, l)
			if err := os.Truncate(filepath.Join(dir, hashesFile), keep); err != nil {
				t.Fatal(err)
			}
			l2 := openLog(t, dir, FileOptions{Signer: signer})
			if l2.Damaged() != nil || l2.Size() != 13 || l2.Recovery().RebuiltHashes == 0 {
				t.Fatalf("damaged %v size %d recovery %+v", l2.Damaged(), l2.Size(), l2.Recovery())
			}
			cp, err := l2.Checkpoint()
			if err != nil {
				t.Fatal(err)
			}
			if rep := mustVerify(t, l2, vkey); !rep.OK {
				t.Fatalf("verify: %v", rep)
			}
			rec, _ := l2.Get(11)
			p, err := l2.Prove(11, cp)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckProof(vkey, cp, rec, p); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRunWritesCheckpoints(t *testing.T) {
	signer, vkey := newKeys(t)
	l := openLog(t, t.TempDir(), FileOptions{Signer: signer, CheckpointInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	appendN(t, l, 0, 3)
	deadline := time.Now().Add(5 * time.Second)
	for len(l.Checkpoints()) == 0 || sizeOf(l.Checkpoints()[len(l.Checkpoints())-1]) != 3 {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint from Run")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, l, vkey); !rep.OK || rep.Anchored != 3 {
		t.Fatalf("verify: %+v", rep)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []FileOptions{
		{CheckpointInterval: -1},
		{MaxBatch: -1},
		{BatchWindow: 2 * time.Second},
	} {
		if err := o.Validate(); !errors.Is(err, ErrBadOption) {
			t.Errorf("%+v: %v", o, err)
		}
		if _, err := OpenFile(t.TempDir(), o); !errors.Is(err, ErrBadOption) {
			t.Errorf("OpenFile(%+v): %v", o, err)
		}
	}
	l := openLog(t, t.TempDir(), FileOptions{})
	if _, err := l.Checkpoint(); !errors.Is(err, ErrNoSigner) {
		t.Fatalf("checkpoint without signer: %v", err)
	}
}

func TestBatchWindow(t *testing.T) {
	l := openLog(t, t.TempDir(), FileOptions{BatchWindow: 2 * time.Millisecond, MaxBatch: 8})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if _, err := l.Append(context.Background(), mkRec(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := l.Stats(); st.Records != 16 || st.Batches < 2 {
		t.Fatalf("stats %+v (MaxBatch 8 needs at least 2 batches)", st)
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add([]byte(`{"seq":1}`))
	f.Add([]byte("00000002 00000000 {}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseFrame(b) // must not panic
		if bytes.IndexByte(b, '\n') >= 0 {
			return
		}
		fr := appendFrame(nil, b)
		got, err := parseFrame(fr[:len(fr)-1])
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("round trip of %q: %q %v", b, got, err)
		}
	})
}

func FuzzParseTreeHead(f *testing.F) {
	f.Add("northbank-pdp/trail\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseTreeHead(s)
		if err != nil {
			return
		}
		if h2, err := parseTreeHead(h.text()); err != nil || h2 != h {
			t.Fatalf("round trip %+v: %+v %v", h, h2, err)
		}
	})
}
