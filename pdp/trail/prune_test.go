package trail

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// kindOf alternates classes: even records are decisions, odd ones admin.
func kindOf(i int) string {
	if i%2 == 0 {
		return "decision"
	}
	return "admin"
}

func mkKindRec(i int) Record {
	r := mkRec(i)
	r.Kind = kindOf(i)
	return r
}

// appendKinds appends records [from, from+n) of mkKindRec in batches.
func appendKinds(t testing.TB, l *FileLog, from, n int) {
	t.Helper()
	for i := from; i < from+n; {
		var batch []Record
		for ; i < from+n && len(batch) < 1000; i++ {
			batch = append(batch, mkKindRec(i))
		}
		if _, err := l.Append(context.Background(), batch...); err != nil {
			t.Fatal(err)
		}
	}
}

func snapshot(t testing.TB, l *FileLog) []Record {
	t.Helper()
	var out []Record
	if err := l.Scan(0, l.Size(), func(r Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func fileBytes(t testing.TB, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func noTemp(t testing.TB, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, pruneTempFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s left behind: %v", pruneTempFile, err)
	}
}

// checkTombstone checks that got is the tombstone of want.
func checkTombstone(t *testing.T, got, want Record) {
	t.Helper()
	leaf, err := LeafHash(want)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Pruned || got.Seq != want.Seq || got.Kind != want.Kind || got.ID != want.ID || !got.Time.Equal(want.Time) ||
		(len(got.Body) > 0 && string(got.Body) != "null") || got.Leaf != base64.StdEncoding.EncodeToString(leaf[:]) {
		t.Fatalf("record %d: got %+v, want the tombstone of %+v", want.Seq, got, want)
	}
	if h, err := LeafHash(got); err != nil || h != leaf {
		t.Fatalf("record %d: tombstone leaf %v %v, want %v", want.Seq, h, err, leaf)
	}
}

func sameRecord(t *testing.T, got, want Record) {
	t.Helper()
	a, _ := Canonical(got)
	b, _ := Canonical(want)
	if !bytes.Equal(a, b) {
		t.Fatalf("record %d changed:\n%s\n%s", want.Seq, a, b)
	}
}

func TestPrune(t *testing.T) {
	tests := []struct {
		name   string
		kind   string
		before time.Duration // after epoch
		pruned func(i int) bool
	}{
		{"decisions before T, admin kept", "decision", 20 * time.Millisecond, func(i int) bool { return i%2 == 0 && i < 20 }},
		{"admin before T, decisions kept", "admin", 10 * time.Millisecond, func(i int) bool { return i%2 == 1 && i < 10 }},
		{"every decision", "decision", time.Hour, func(i int) bool { return i%2 == 0 }},
		{"nothing that old", "decision", 0, func(int) bool { return false }},
		{"no such class", "search", time.Hour, func(int) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			signer, vkey := newKeys(t)
			l := openLog(t, dir, FileOptions{Signer: signer})
			const n = 40
			appendKinds(t, l, 0, n)
			if _, err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			orig := snapshot(t, l)
			origFile := fileBytes(t, dir, recordsFile)
			origHashes := fileBytes(t, dir, hashesFile)
			want := 0
			for i := range n {
				if tt.pruned(i) {
					want++
				}
			}

			got, err := l.Prune(context.Background(), tt.kind, epoch.Add(tt.before))
			if err != nil || got != want {
				t.Fatalf("Prune = %d, %v; want %d", got, err, want)
			}
			noTemp(t, dir)
			if want == 0 && !bytes.Equal(fileBytes(t, dir, recordsFile), origFile) {
				t.Fatal("records file rewritten with nothing to prune")
			}
			if !bytes.Equal(fileBytes(t, dir, hashesFile), origHashes) {
				t.Fatal("stored hashes changed")
			}
			for i, rec := range snapshot(t, l) {
				if tt.pruned(i) {
					checkTombstone(t, rec, orig[i])
				} else {
					sameRecord(t, rec, orig[i])
				}
			}
			if rec, err := l.Get(0); err != nil || rec.Pruned != tt.pruned(0) {
				t.Fatalf("Get(0) = %+v, %v", rec, err)
			}
			rep := mustVerify(t, l, vkey)
			if !rep.OK || rep.Pruned != uint64(want) || rep.Anchored != n || rep.To != n {
				t.Fatalf("verify after prune: %+v", rep)
			}

			// Records already pruned are left alone.
			before := fileBytes(t, dir, recordsFile)
			if got, err := l.Prune(context.Background(), tt.kind, epoch.Add(tt.before)); err != nil || got != 0 {
				t.Fatalf("second Prune = %d, %v", got, err)
			}
			if !bytes.Equal(fileBytes(t, dir, recordsFile), before) {
				t.Fatal("second Prune rewrote the records file")
			}

			// Appends go on, checkpoints and proofs cover tombstones too.
			appendKinds(t, l, n, 5)
			cp, err := l.Checkpoint()
			if err != nil {
				t.Fatal(err)
			}
			if rep := mustVerify(t, l, vkey); !rep.OK || rep.Pruned != uint64(want) || rep.Anchored != n+5 {
				t.Fatalf("verify after append: %+v", rep)
			}
			for seq := range uint64(n + 5) {
				rec, _ := l.Get(seq)
				p, err := l.Prove(seq, cp)
				if err != nil {
					t.Fatal(err)
				}
				if err := CheckProof(vkey, cp, rec, p); err != nil {
					t.Fatalf("proof of %d (pruned %v): %v", seq, rec.Pruned, err)
				}
				if rec.Pruned {
					forged := rec
					forged.Leaf = base64.StdEncoding.EncodeToString(make([]byte, tlog.HashSize))
					if err := CheckProof(vkey, cp, forged, p); !errors.Is(err, ErrProof) {
						t.Fatalf("tombstone with another leaf: %v", err)
					}
				}
			}

		})
	}
}

// prunedTrail writes 20 records (decisions even, admin odd) with checkpoints
// at 10 and 20, prunes the decisions among the first 10 (0, 2, 4, 6, 8),
// applies tamper to the record lines, and reopens the trail.
func prunedTrail(t *testing.T, tamper func([][]byte) [][]byte) (*FileLog, string) {
	t.Helper()
	dir := t.TempDir()
	signer, vkey := newKeys(t)
	l, err := OpenFile(dir, FileOptions{Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	appendKinds(t, l, 0, 10)
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	appendKinds(t, l, 10, 10)
	if n, err := l.Prune(context.Background(), "decision", epoch.Add(10*time.Millisecond)); err != nil || n != 5 {
		t.Fatalf("prune: %d %v", n, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		writeLines(t, dir, tamper(recordLines(t, dir)))
	}
	return openLog(t, dir, FileOptions{Signer: signer}), vkey
}

func TestVerifyAfterPrune(t *testing.T) {
	otherLeaf := tlog.RecordHash([]byte("another record"))
	editTombstone := func(edit func(*Record)) func([][]byte) [][]byte {
		return func(ls [][]byte) [][]byte {
			ls[4] = reframe(t, ls[4], func(p []byte) []byte {
				var rec Record
				if err := json.Unmarshal(p, &rec); err != nil || !rec.Pruned {
					t.Fatalf("record 4 is not a tombstone: %s", p)
				}
				edit(&rec)
				b, err := Canonical(rec)
				if err != nil {
					t.Fatal(err)
				}
				return b
			})
			return ls
		}
	}
	tests := []struct {
		name    string
		tamper  func([][]byte) [][]byte
		problem Problem
		seq     uint64
	}{
		{name: "untouched"},
		{
			name: "byte flipped in a kept record",
			tamper: func(ls [][]byte) [][]byte {
				i := bytes.Index(ls[13], []byte("allow"))
				ls[13][i] = 'A'
				return ls
			},
			problem: Changed, seq: 13,
		},
		{
			name: "kept record edited, checksum fixed",
			tamper: func(ls [][]byte) [][]byte {
				ls[3] = reframe(t, ls[3], func(p []byte) []byte { return bytes.Replace(p, []byte("allow"), []byte("deny!"), 1) })
				return ls
			},
			problem: Changed, seq: 3,
		},
		{
			name:    "tombstone leaf edited",
			tamper:  editTombstone(func(r *Record) { r.Leaf = base64.StdEncoding.EncodeToString(otherLeaf[:]) }),
			problem: Changed, seq: 4,
		},
		{
			name:    "tombstone leaf malformed",
			tamper:  editTombstone(func(r *Record) { r.Leaf = "bm90IGEgaGFzaA==" }),
			problem: Changed, seq: 4,
		},
		{
			name:    "tombstone given a body",
			tamper:  editTombstone(func(r *Record) { r.Body = json.RawMessage(`{"effect":"deny"}`) }),
			problem: Changed, seq: 4,
		},
		{
			name:    "tombstone turned back into a record",
			tamper:  editTombstone(func(r *Record) { r.Pruned, r.Leaf, r.Body = false, "", json.RawMessage(`{"effect":"allow"}`) }),
			problem: Changed, seq: 4,
		},
		{
			name:    "tombstone deleted",
			tamper:  func(ls [][]byte) [][]byte { return append(ls[:6:6], ls[7:]...) },
			problem: Dropped, seq: 6,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, vkey := prunedTrail(t, tt.tamper)
			rep := mustVerify(t, l, vkey)
			if tt.problem == "" {
				if !rep.OK || rep.Pruned != 5 || rep.Anchored != 20 || rep.Checkpoints != 2 {
					t.Fatalf("untouched trail: %+v", rep)
				}
				if !strings.Contains(rep.String(), "5 pruned") {
					t.Fatalf("report %q", rep)
				}
				return
			}
			if rep.OK || rep.Problem != tt.problem || rep.Seq != tt.seq {
				t.Fatalf("got %v (%+v), want %s at %d", rep, rep, tt.problem, tt.seq)
			}
			t.Logf("%v", rep)
		})
	}
}

func TestPruneWhileAppending(t *testing.T) {
	dir := t.TempDir()
	signer, vkey := newKeys(t)
	l := openLog(t, dir, FileOptions{Signer: signer})
	const prefill = 3000
	appendKinds(t, l, 0, prefill)

	type ack struct {
		seq uint64
		id  string
	}
	var (
		mu     sync.Mutex
		acks   []ack
		stop   atomic.Bool
		during atomic.Int64 // appends acknowledged while a Prune ran
		prun   atomic.Bool
		wg     sync.WaitGroup
	)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				rec := mkKindRec(i)
				rec.ID = fmt.Sprintf("w%d-%d", w, i)
				rec.Time = epoch.Add(time.Hour) // never old enough
				seqs, err := l.Append(context.Background(), rec)
				if err != nil {
					t.Error(err)
					return
				}
				if prun.Load() {
					during.Add(1)
				}
				mu.Lock()
				acks = append(acks, ack{seqs[0], rec.ID})
				mu.Unlock()
			}
		})
	}
	total := 0
	for _, cut := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second} {
		prun.Store(true)
		n, err := l.Prune(context.Background(), "decision", epoch.Add(cut))
		prun.Store(false)
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	stop.Store(true)
	wg.Wait()
	if total != prefill/2 {
		t.Fatalf("pruned %d, want %d", total, prefill/2)
	}
	if got, want := l.Size(), uint64(prefill+len(acks)); got != want {
		t.Fatalf("size %d, want %d", got, want)
	}
	for _, a := range acks {
		rec, err := l.Get(a.seq)
		if err != nil || rec.ID != a.id || rec.Pruned {
			t.Fatalf("acknowledged record %d (%s): %+v, %v", a.seq, a.id, rec, err)
		}
	}
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, l, vkey); !rep.OK || rep.Pruned != prefill/2 {
		t.Fatalf("verify: %+v", rep)
	}
	t.Logf("%d appends, %d of them acknowledged while a Prune ran", len(acks), during.Load())
	noTemp(t, dir)
}

// A Scan that started before a Prune reads the file it started on; the
// replaced file is closed only after.
func TestScanDuringPrune(t *testing.T) {
	l := openLog(t, t.TempDir(), FileOptions{})
	appendKinds(t, l, 0, 100)
	started, release := make(chan struct{}), make(chan struct{})
	scanned := make(chan error, 1)
	var seen []Record
	go func() {
		scanned <- l.Scan(0, 100, func(r Record) error {
			if r.Seq == 0 {
				close(started)
				<-release
			}
			seen = append(seen, r)
			return nil
		})
	}()
	<-started
	if n, err := l.Prune(context.Background(), "decision", epoch.Add(time.Hour)); err != nil || n != 50 {
		t.Fatalf("prune: %d %v", n, err)
	}
	close(release)
	if err := <-scanned; err != nil {
		t.Fatal(err)
	}
	if len(seen) != 100 || seen[0].Pruned || seen[98].Pruned {
		t.Fatalf("scan across a prune saw %d records", len(seen))
	}
	if rec, _ := l.Get(98); !rec.Pruned {
		t.Fatalf("after prune: %+v", rec)
	}
}

func TestPruneReopen(t *testing.T) {
	for name, keep := range map[string]int64{"hashes intact": -1, "hashes lost": 0, "hashes torn": 7*32 + 5} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			signer, vkey := newKeys(t)
			l := openLog(t, dir, FileOptions{Signer: signer})
			appendKinds(t, l, 0, 30)
			if _, err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			if n, err := l.Prune(context.Background(), "decision", epoch.Add(time.Hour)); err != nil || n != 15 {
				t.Fatalf("prune: %d %v", n, err)
			}
			appendKinds(t, l, 30, 3) // after the checkpoint: recomputed on open
			// No Close: a crash.
			dropLock(t, l)
			if keep >= 0 {
				if err := os.Truncate(filepath.Join(dir, hashesFile), keep); err != nil {
					t.Fatal(err)
				}
			}
			l2 := openLog(t, dir, FileOptions{Signer: signer})
			r := l2.Recovery()
			if l2.Damaged() != nil || l2.Size() != 33 || (keep == 0 && r.RebuiltHashes != 33) || (keep < 0 && r.RebuiltHashes != 3) {
				t.Fatalf("damaged %v size %d recovery %+v", l2.Damaged(), l2.Size(), r)
			}
			cp, err := l2.Checkpoint()
			if err != nil {
				t.Fatal(err)
			}
			if rep := mustVerify(t, l2, vkey); !rep.OK || rep.Pruned != 15 || rep.Anchored != 33 {
				t.Fatalf("verify: %+v", rep)
			}
			for _, seq := range []uint64{0, 1, 28, 32} {
				rec, _ := l2.Get(seq)
				p, err := l2.Prove(seq, cp)
				if err != nil {
					t.Fatal(err)
				}
				if err := CheckProof(vkey, cp, rec, p); err != nil || rec.Pruned != (seq%2 == 0 && seq < 30) {
					t.Fatalf("record %d (pruned %v): %v", seq, rec.Pruned, err)
				}
			}
		})
	}
}

func TestApplyRetention(t *testing.T) {
	l := openLog(t, t.TempDir(), FileOptions{})
	now := epoch
	kinds := []string{"decision", "admin", "search"}
	var recs []Record
	for d := range 10 { // one record of each class per day, d days old
		for _, k := range kinds {
			recs = append(recs, Record{Kind: k, ID: fmt.Sprintf("%s-%d", k, d), Time: now.Add(-time.Duration(d) * 24 * time.Hour), Body: json.RawMessage(`{"x":1}`)})
		}
	}
	if _, err := l.Append(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	rules := []RetentionRule{
		{Kind: "decision", Keep: 48 * time.Hour}, // days 3..9 (day 2 is exactly 48h: kept)
		{Kind: "admin", Keep: 7 * 24 * time.Hour},
		{Kind: "search"}, // forever
	}
	got, err := l.ApplyRetention(context.Background(), rules, now)
	if err != nil || fmt.Sprint(got) != "map[admin:2 decision:7]" {
		t.Fatalf("ApplyRetention = %v, %v", got, err)
	}
	for _, r := range snapshot(t, l) {
		d, _ := strconv.Atoi(r.ID[strings.IndexByte(r.ID, '-')+1:])
		want := (r.Kind == "decision" && d > 2) || (r.Kind == "admin" && d > 7)
		if r.Pruned != want {
			t.Fatalf("%s: pruned %v", r.ID, r.Pruned)
		}
	}
	if got, err := l.ApplyRetention(context.Background(), rules, now); err != nil || fmt.Sprint(got) != "map[]" {
		t.Fatalf("again: %v, %v", got, err)
	}

	for _, bad := range [][]RetentionRule{
		{{Kind: "", Keep: time.Hour}},
		{{Kind: "decision", Keep: -time.Hour}},
		{{Kind: "decision", Keep: time.Hour}, {Kind: "decision", Keep: 2 * time.Hour}},
	} {
		if _, err := l.ApplyRetention(context.Background(), bad, now); !errors.Is(err, ErrBadOption) {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

func TestPruneErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, l *FileLog) context.Context
		kind  string
		want  error
	}{
		{"no kind", func(*testing.T, *FileLog) context.Context { return context.Background() }, "", ErrBadOption},
		{"cancelled", func(*testing.T, *FileLog) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, "decision", context.Canceled},
		{"closed", func(t *testing.T, l *FileLog) context.Context {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			return context.Background()
		}, "decision", ErrClosed},
		{"damaged", func(t *testing.T, l *FileLog) context.Context {
			l.damage("test")
			return context.Background()
		}, "decision", ErrDamaged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, FileOptions{})
			appendKinds(t, l, 0, 10)
			orig := fileBytes(t, dir, recordsFile)
			ctx := tt.setup(t, l)
			if n, err := l.Prune(ctx, tt.kind, epoch.Add(time.Hour)); !errors.Is(err, tt.want) || n != 0 {
				t.Fatalf("Prune = %d, %v; want %v", n, err, tt.want)
			}
			// The preallocated zeros past the records go at Close.
			if !bytes.Equal(bytes.TrimRight(fileBytes(t, dir, recordsFile), "\x00"), bytes.TrimRight(orig, "\x00")) {
				t.Fatal("records file changed")
			}
			noTemp(t, dir)
		})
	}
}

// A crash during Prune leaves records.log whole (old or new) and perhaps
// the temporary file, complete or not. OpenFile deletes it and opens the
// records file alone.
func TestOpenRemovesStalePruneFile(t *testing.T) {
	tests := []struct {
		name string
		temp func(records []byte) []byte
	}{
		{"torn temp", func(r []byte) []byte { return r[:len(r)/2] }},
		{"complete temp, not renamed", func(r []byte) []byte {
			// What Prune would have renamed: the same records, every
			// decision a tombstone.
			var out []byte
			for i, ln := range bytes.SplitAfter(r, []byte{'\n'}) {
				if len(ln) == 0 {
					continue
				}
				p, err := parseFrame(bytes.TrimSuffix(ln, []byte{'\n'}))
				if err != nil {
					t.Fatal(err)
				}
				if i%2 == 0 {
					leaf := tlog.RecordHash(p)
					rec := mkKindRec(i)
					p, _ = Canonical(Record{Seq: uint64(i), Kind: rec.Kind, ID: rec.ID, Time: rec.Time, Pruned: true, Leaf: base64.StdEncoding.EncodeToString(leaf[:])})
				}
				out = appendFrame(out, p)
			}
			return out
		}},
		{"garbage temp", func([]byte) []byte { return []byte("00000010 deadbeef {\"seq\":0,") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			signer, vkey := newKeys(t)
			l := openLog(t, dir, FileOptions{Signer: signer})
			appendKinds(t, l, 0, 12)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			records := fileBytes(t, dir, recordsFile)
			if err := os.WriteFile(filepath.Join(dir, pruneTempFile), tt.temp(records), 0o640); err != nil {
				t.Fatal(err)
			}
			l = openLog(t, dir, FileOptions{Signer: signer})
			noTemp(t, dir)
			if l.Damaged() != nil || l.Size() != 12 || !bytes.Equal(fileBytes(t, dir, recordsFile), records) {
				t.Fatalf("damaged %v size %d", l.Damaged(), l.Size())
			}
			if rep := mustVerify(t, l, vkey); !rep.OK || rep.Pruned != 0 {
				t.Fatalf("verify: %+v", rep)
			}
			if n, err := l.Prune(context.Background(), "decision", epoch.Add(time.Hour)); err != nil || n != 6 {
				t.Fatalf("prune after reopen: %d %v", n, err)
			}
			if rep := mustVerify(t, l, vkey); !rep.OK || rep.Pruned != 6 {
				t.Fatalf("verify: %+v", rep)
			}
		})
	}
}

// TestPruneCrashChild is the child side of TestPruneCrash: it appends from
// four goroutines and prunes decisions in a loop, printing every
// acknowledged record and every finished prune until it is killed.
func TestPruneCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" || os.Getenv("TRAIL_PRUNE_CHILD") == "" {
		t.Skip("child process of TestPruneCrash")
	}
	signer, err := note.NewSigner(os.Getenv(crashKeyEnv))
	if err != nil {
		t.Fatal(err)
	}
	l, err := OpenFile(dir, FileOptions{Signer: signer, CheckpointInterval: 3 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = l.Run(context.Background()) }()
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	emit := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format, args...)
		out.Flush()
		mu.Unlock()
	}
	go func() {
		for {
			n, err := l.Prune(context.Background(), "decision", time.Now())
			if err != nil {
				fmt.Fprintln(os.Stderr, "prune:", err)
				os.Exit(3)
			}
			emit("prune %d\n", n)
		}
	}()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				rec := mkKindRec(i)
				rec.ID, rec.Time = fmt.Sprintf("w%d-%d", w, i), time.Now()
				seqs, err := l.Append(context.Background(), rec)
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(3)
				}
				emit("ack %d %s\n", seqs[0], rec.ID)
			}
		})
	}
	wg.Wait()
}

// TestPruneCrash kills a process that appends and prunes, at whatever point
// it has reached, and checks that the trail reopens whole: every
// acknowledged record is there (as a record or a tombstone) and it verifies.
func TestPruneCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	skey, vkey, err := note.GenerateKey(nil, "northbank-pdp")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	dir := t.TempDir()
	for round := range 3 {
		acked := map[uint64]string{}
		prunes := 0
		cmd := exec.Command(os.Args[0], "-test.run=^TestPruneCrashChild$", "-test.v=false")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashKeyEnv+"="+skey, "TRAIL_PRUNE_CHILD=1")
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 2 && f[0] == "prune":
				prunes++
			case len(f) == 3 && f[0] == "ack":
				seq, err := strconv.ParseUint(f[1], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				acked[seq] = f[2]
			}
			if len(acked) >= 400 && prunes >= 3 {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		_ = cmd.Wait()
		if prunes < 3 {
			t.Fatalf("round %d: child stopped after %d acks, %d prunes", round, len(acked), prunes)
		}

		l, err := OpenFile(dir, FileOptions{Signer: signer})
		if err != nil {
			t.Fatal(err)
		}
		noTemp(t, dir)
		if l.Damaged() != nil {
			t.Fatalf("round %d: %v", round, l.Damaged())
		}
		for seq, id := range acked {
			rec, err := l.Get(seq)
			if err != nil || rec.ID != id {
				t.Fatalf("round %d: acknowledged record %d (%s): got %+v, %v", round, seq, id, rec, err)
			}
		}
		rep, err := l.Verify(context.Background(), vkey, 0, ^uint64(0))
		if err != nil || !rep.OK {
			t.Fatalf("round %d: verify after kill: %+v %v", round, rep, err)
		}
		t.Logf("round %d: %d acknowledged, %d prunes finished, %d in trail, %d pruned, recovery %+v",
			round, len(acked), prunes, l.Size(), rep.Pruned, l.Recovery())
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkPrune measures Prune on a 100k-record log (half decisions, half
// admin): records/s is records rewritten per second, pruned/s tombstones
// written per second. With appenders, four goroutines append throughout and
// max-append-ms is the slowest Append seen while a Prune ran.
func BenchmarkPrune(b *testing.B) {
	const n = 100_000
	src := b.TempDir()
	l, err := OpenFile(src, FileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	appendKinds(b, l, 0, n)
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	files := map[string][]byte{}
	for _, name := range []string{recordsFile, hashesFile, checkpointsFile} {
		files[name] = fileBytes(b, src, name)
	}
	b.Logf("records file: %d MB", len(files[recordsFile])>>20)

	for _, bc := range []struct {
		name      string
		before    time.Duration // after epoch
		appenders int
	}{
		{"prune=0%", 0, 0},
		{"prune=25%", n / 2 * time.Millisecond, 0},
		{"prune=50%", n * time.Millisecond, 0},
		{"prune=0%/appenders=4", 0, 4},
		{"prune=50%/appenders=4", n * time.Millisecond, 4},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var pruned int
			var maxAppend time.Duration
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				for name, data := range files {
					if err := os.WriteFile(filepath.Join(dir, name), data, 0o640); err != nil {
						b.Fatal(err)
					}
				}
				syscall.Sync() // the copy's writeback is not the appenders' problem
				l, err := OpenFile(dir, FileOptions{})
				if err != nil {
					b.Fatal(err)
				}
				var stop atomic.Bool
				var wg sync.WaitGroup
				var mu sync.Mutex
				for range bc.appenders {
					wg.Go(func() {
						rec := mkKindRec(1)
						for !stop.Load() {
							t0 := time.Now()
							if _, err := l.Append(context.Background(), rec); err != nil {
								b.Error(err)
								return
							}
							d := time.Since(t0)
							mu.Lock()
							maxAppend = max(maxAppend, d)
							mu.Unlock()
						}
					})
				}
				b.StartTimer()
				got, err := l.Prune(context.Background(), "decision", epoch.Add(bc.before))
				b.StopTimer()
				stop.Store(true)
				wg.Wait()
				if err != nil {
					b.Fatal(err)
				}
				pruned += got
				if err := l.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			s := b.Elapsed().Seconds()
			b.ReportMetric(float64(n*b.N)/s, "records/s")
			b.ReportMetric(float64(pruned)/s, "pruned/s")
			if bc.appenders > 0 {
				b.ReportMetric(float64(maxAppend.Microseconds())/1000, "max-append-ms")
			}
		})
	}
}

// A checkpoint of the empty tree (Run can sign one before the first append)
// is extended by every later one. Found by TestPruneCrash; belongs with the
// Verify tests.
func TestVerifyEmptyCheckpoint(t *testing.T) {
	signer, vkey := newKeys(t)
	l := openLog(t, t.TempDir(), FileOptions{Signer: signer})
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 0, 3)
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, l, vkey); !rep.OK || rep.Checkpoints != 2 {
		t.Fatalf("verify: %+v", rep)
	}
}
