package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// testSegBytes is the segment size of the unit tests: a segment holds
// about 20 of answerRec's records.
const testSegBytes = 4 << 10

// answerRec is spooled answer number i: id d-<i>, a body of ~200 bytes.
func answerRec(i uint64) trail.Record {
	body := fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("x", 180))
	return trail.Record{Kind: KindAnswer, ID: fmt.Sprintf("d-%d", i), Time: time.Now().UTC(), Body: []byte(body)}
}

// addAnswers spools answers number from..to-1, ten at a time, each ten
// written before the next (the async drainer would write them all in one
// batch, and a segment is rolled only between batches).
func addAnswers(t *testing.T, sp *spool, from, to uint64) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := sp.add(context.Background(), answerRec(i)); err != nil {
			t.Fatal(err)
		}
		if (i+1)%10 != 0 && i+1 != to {
			continue
		}
		for deadline := time.Now().Add(5 * time.Second); sp.size() < i+1; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d answers written", sp.size(), i+1)
			}
		}
	}
}

// checkSpool reads spool seqs from..size across the segments, as the
// shipper does, and checks that seq i holds answer d-<i>.
func checkSpool(t *testing.T, sp *spool, from uint64) {
	t.Helper()
	size, next := sp.size(), from
	err := sp.read(from, size, func(seq uint64, r trail.Record) error {
		if want := fmt.Sprintf("d-%d", next); r.ID != want || seq != next {
			return fmt.Errorf("spool seq %d holds %s, want seq %d to hold %s", seq, r.ID, next, want)
		}
		next++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if next != size {
		t.Fatalf("read spool seqs %d..%d, want up to %d", from, next, size)
	}
}

// segmentBases lists the bases of the segment directories in dir.
func segmentBases(t *testing.T, dir string) []uint64 {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, s := range segs {
		out = append(out, s.base)
	}
	return out
}

func reopen(t *testing.T, sp *spool, dir, mode string) *spool {
	t.Helper()
	if sp != nil {
		if err := sp.close(); err != nil {
			t.Fatal(err)
		}
	}
	sp, err := openSpool(dir, mode, testSegBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.close() })
	return sp
}

// TestSpoolSegmentsRollAndKeepSeqs: the spool starts a new segment once
// one holds spool_segment_bytes of records, each segment starts where the
// previous one ended, and spool seqs go on across segments and restarts
// (async: after the drainer wrote them).
func TestSpoolSegmentsRollAndKeepSeqs(t *testing.T) {
	for _, mode := range []string{SpoolSync, SpoolAsync} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			sp := reopen(t, nil, dir, mode)
			addAnswers(t, sp, 0, 150)
			sp = reopen(t, sp, dir, mode)
			if sp.size() != 150 || sp.spooled() != 150 {
				t.Fatalf("reopened: size %d, spooled %d, want 150", sp.size(), sp.spooled())
			}
			addAnswers(t, sp, 150, 230)
			sp = reopen(t, sp, dir, mode)
			bases := segmentBases(t, dir)
			if len(bases) < 8 || bases[0] != 0 {
				t.Fatalf("230 answers of ~250 bytes in segments of %d bytes: segments %v", testSegBytes, bases)
			}
			for i := 1; i < len(bases); i++ {
				l, err := trail.OpenFile(filepath.Join(dir, segmentName(bases[i-1])), trail.FileOptions{})
				if err != nil {
					t.Fatal(err)
				}
				n, bytes := l.Size(), l.Stats().RecordBytes
				_ = l.Close()
				if i < len(bases)-1 && bases[i-1]+n != bases[i] {
					t.Fatalf("segment %d holds %d records, the next starts at %d", bases[i-1], n, bases[i])
				}
				if bytes < testSegBytes || bytes > testSegBytes+10*300 {
					t.Errorf("sealed segment %d holds %d bytes of records, want %d plus at most one write", bases[i-1], bytes, testSegBytes)
				}
			}
			checkSpool(t, sp, 0)
			if sp.size() != 230 {
				t.Fatalf("size %d, want 230", sp.size())
			}
		})
	}
}

// TestSpoolPrunesOnlyWhatWasShipped: a segment is deleted once every
// record in it is below the shipping position, never before, and the
// segment written to never; what is left reads as before, and a reopened
// spool goes on with the next seq, not with one a deleted segment held.
func TestSpoolPrunesOnlyWhatWasShipped(t *testing.T) {
	dir := t.TempDir()
	sp := reopen(t, nil, dir, SpoolSync)
	addAnswers(t, sp, 0, 200)
	all := segmentBases(t, dir)
	if len(all) < 5 {
		t.Fatalf("segments %v", all)
	}
	cases := []struct {
		name    string
		shipped uint64
		first   uint64 // the first segment left
	}{
		{"nothing shipped", 0, all[0]},
		{"all but the last record of the first segment", all[1] - 1, all[0]},
		{"the first segment", all[1], all[1]},
		{"into the third segment", all[2] + 3, all[2]},
		{"everything", 200, all[len(all)-1]},
	}
	before := sp.diskUsage()
	for _, c := range cases {
		if err := sp.setShipped(c.shipped); err != nil {
			t.Fatal(err)
		}
		if _, err := sp.prune(c.shipped); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := segmentBases(t, dir)
		if got[0] != c.first || got[len(got)-1] != all[len(all)-1] || sp.first() != c.first || sp.segments() != len(got) {
			t.Fatalf("%s: segments left %v (spool says first %d, %d segments), want from %d to %d", c.name, got, sp.first(), sp.segments(), c.first, all[len(all)-1])
		}
		checkSpool(t, sp, c.shipped)
	}
	if after := sp.diskUsage(); after >= before/3 {
		t.Errorf("on disk: %d bytes before shipping, %d after", before, after)
	}
	sp = reopen(t, sp, dir, SpoolSync)
	if sp.size() != 200 || sp.first() != all[len(all)-1] {
		t.Fatalf("reopened: size %d, first %d", sp.size(), sp.first())
	}
	addAnswers(t, sp, 200, 260)
	sp = reopen(t, sp, dir, SpoolSync)
	checkSpool(t, sp, sp.first())
	if sp.size() != 260 {
		t.Fatalf("size %d, want 260", sp.size())
	}
}

// writeLegacySpool writes n answers into dir as a sidecar before segments
// did: one FileLog in dir/spool.
func writeLegacySpool(t *testing.T, dir string, n uint64) {
	t.Helper()
	l, err := trail.OpenFile(filepath.Join(dir, legacySpool), trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := l.Append(context.Background(), answerRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// ingestLedger is a central PDP's trail ingest as far as a sidecar sees
// it: records stored once by spool seq (a seq at or below the highest
// stored is skipped), acked the highest; down answers 503.
type ingestLedger struct {
	mu    sync.Mutex
	ids   map[uint64]string
	acked uint64
	down  bool
	bad   []string
}

func newIngestLedger(t *testing.T) (*ingestLedger, *httptest.Server) {
	g := &ingestLedger{ids: map[uint64]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.down || r.URL.Path != "/v1/trail/ingest" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var body struct {
			Records []ingestRecord `json:"records"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rec := range body.Records {
			if rec.Seq <= g.acked {
				if id := g.ids[rec.Seq]; id != "" && id != rec.ID {
					g.bad = append(g.bad, fmt.Sprintf("seq %d sent as %s, stored as %s", rec.Seq, rec.ID, id))
				}
				continue
			}
			g.ids[rec.Seq], g.acked = rec.ID, rec.Seq
		}
		_, _ = fmt.Fprintf(w, `{"acked":%d}`, g.acked)
	}))
	t.Cleanup(srv.Close)
	return g, srv
}

func (g *ingestLedger) setDown(down bool) {
	g.mu.Lock()
	g.down = down
	g.mu.Unlock()
}

// check: the ledger holds spool seqs from..to-1 (ingest seqs from+1..to),
// seq s as answer d-<s>, nothing else, and no seq was sent as another answer.
func (g *ingestLedger) check(t *testing.T, from, to uint64) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, b := range g.bad {
		t.Error(b)
	}
	if len(g.ids) != int(to-from) {
		t.Errorf("the central trail holds %d records, want %d (spool seqs %d..%d)", len(g.ids), to-from, from, to-1)
	}
	for s := from; s < to; s++ {
		if id := g.ids[s+1]; id != fmt.Sprintf("d-%d", s) {
			t.Errorf("ingest seq %d holds %q, want d-%d", s+1, id, s)
		}
	}
}

// shippingSidecar is a sidecar on spool dir shipping to central, with
// segments of segBytes (below the configuration's minimum too, to make
// many quickly); its shipper runs until the test ends.
func shippingSidecar(t *testing.T, central, dir, mode string, segBytes int64) *Sidecar {
	t.Helper()
	cfg := DefaultConfig()
	cfg.CentralURL, cfg.SpoolDir, cfg.SpoolMode, cfg.ID = central, dir, mode, "sc-prune"
	cfg.SpoolSegmentBytes, cfg.ShipInterval = max(segBytes, MinSpoolSegmentBytes), 20*time.Millisecond
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.spool.segBytes = segBytes // before any append
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.ship(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// openLogs counts the spool's segments whose log is open.
func openLogs(sp *spool) int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	n := 0
	for _, seg := range sp.segs {
		if seg.log != nil {
			n++
		}
	}
	return n
}

func waitShipped(t *testing.T, s *Sidecar, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.spool.shipped() < n || s.spool.size() < n {
		if time.Now().After(deadline) {
			t.Fatalf("shipped %d of %d", s.spool.shipped(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSpoolUpgradesTheOneLogLayout: a spool written before segments (one
// FileLog in spool_dir/spool, part of it shipped) is the segment with
// base 0: the upgraded sidecar ships the rest with the seqs it had, goes
// on in a new segment, and deletes the old log once it is shipped.
func TestSpoolUpgradesTheOneLogLayout(t *testing.T) {
	for _, mode := range []string{SpoolSync, SpoolAsync} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			writeLegacySpool(t, dir, 400) // ~100 KB: more than a segment
			if err := os.WriteFile(filepath.Join(dir, "shipped"), []byte("10\n"), 0o640); err != nil {
				t.Fatal(err)
			}
			ledger, central := newIngestLedger(t)
			ledger.acked = 10 // what the old sidecar shipped
			for s := range uint64(10) {
				ledger.ids[s+1] = fmt.Sprintf("d-%d", s)
			}
			ledger.setDown(true)
			s := shippingSidecar(t, central.URL, dir, mode, MinSpoolSegmentBytes)
			if got := segmentBases(t, dir); len(got) != 2 || got[0] != 0 || got[1] != 400 {
				t.Fatalf("segments after the upgrade %v, want [0 400]: the old log sealed at open", got)
			}
			addAnswers(t, s.spool, 400, 450)
			checkSpool(t, s.spool, 0)
			if _, err := os.Stat(filepath.Join(dir, legacySpool)); err != nil {
				t.Fatalf("the old log went before it was shipped: %v", err)
			}
			ledger.setDown(false)
			waitShipped(t, s, 450)
			ledger.check(t, 0, 450)
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				got := segmentBases(t, dir)
				_, err := os.Stat(filepath.Join(dir, legacySpool))
				if errors.Is(err, os.ErrNotExist) && len(got) == 1 && got[0] == 400 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the old log shipped: segments %v, want [400] (old log: %v)", got, err)
				}
			}
		})
	}
}

// TestShippingPrunesAndResumes: while the central PDP is down nothing is
// deleted; once it is back every answer is shipped once, with its seq,
// the shipped segments go, and a restart goes on from the position.
func TestShippingPrunesAndResumes(t *testing.T) {
	for _, mode := range []string{SpoolSync, SpoolAsync} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			ledger, central := newIngestLedger(t)
			ledger.setDown(true)
			s := shippingSidecar(t, central.URL, dir, mode, MinSpoolSegmentBytes)
			addAnswers(t, s.spool, 0, 1200) // ~300 KB: about 5 segments
			time.Sleep(100 * time.Millisecond)
			down := segmentBases(t, dir)
			if len(down) < 4 || down[0] != 0 {
				t.Fatalf("segments while the central PDP is down %v", down)
			}
			// Sealed segments are closed (their preallocated space cut)
			// but the one shipping is stuck in.
			for deadline := time.Now().Add(5 * time.Second); openLogs(s.spool) > 2; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d segment logs open while shipping is stuck, want the writer's and the first", openLogs(s.spool))
				}
			}
			ledger.setDown(false)
			waitShipped(t, s, 1200)
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				got := segmentBases(t, dir)
				if len(got) == 1 && got[0] == down[len(down)-1] {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("segments after shipping %v, want only the last, %d", got, down[len(down)-1])
				}
			}
			addAnswers(t, s.spool, 1200, 1300)
			waitShipped(t, s, 1300)
			ledger.check(t, 0, 1300)
		})
	}
}

// TestSpoolCrashStates opens spool directories as a crash can leave them
// at each step of a roll or a prune: each opens, keeps every unshipped
// answer under its seq, deletes only shipped segments, and numbers the
// next answer after the last one written.
func TestSpoolCrashStates(t *testing.T) {
	// build writes 200 answers (about 10 segments) and returns the bases.
	build := func(t *testing.T, dir string) []uint64 {
		sp, err := openSpool(dir, SpoolSync, testSegBytes, nil)
		if err != nil {
			t.Fatal(err)
		}
		addAnswers(t, sp, 0, 200)
		if err := sp.close(); err != nil {
			t.Fatal(err)
		}
		return segmentBases(t, dir)
	}
	seg := func(dir string, base uint64) string { return filepath.Join(dir, segmentName(base)) }
	writeShipped := func(t *testing.T, dir string, n uint64) {
		if err := os.WriteFile(filepath.Join(dir, "shipped"), fmt.Appendf(nil, "%d\n", n), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		// crash changes the directory; it returns how far the central
		// PDP holds the answers (its acked) and the first segment
		// expected after open.
		crash func(t *testing.T, dir string, bases []uint64) (held, first uint64)
	}{
		{"a new segment's directory, nothing in it", func(t *testing.T, dir string, bases []uint64) (uint64, uint64) {
			if err := os.Mkdir(seg(dir, 200), 0o750); err != nil {
				t.Fatal(err)
			}
			return 0, 0
		}},
		{"a new segment's files, no record", func(t *testing.T, dir string, bases []uint64) (uint64, uint64) {
			l, err := trail.OpenFile(seg(dir, 200), trail.FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_ = l.Close()
			return 0, 0
		}},
		{"the position written, no segment deleted", func(t *testing.T, dir string, bases []uint64) (uint64, uint64) {
			writeShipped(t, dir, bases[3]+1)
			return bases[3] + 1, bases[3]
		}},
		{"the position written, a segment half deleted", func(t *testing.T, dir string, bases []uint64) (uint64, uint64) {
			writeShipped(t, dir, bases[3])
			for _, name := range []string{"records.log", "checkpoints.log"} {
				if err := os.Remove(filepath.Join(seg(dir, bases[2]), name)); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.RemoveAll(seg(dir, bases[0])); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(seg(dir, bases[1])); err != nil {
				t.Fatal(err)
			}
			return bases[3], bases[3]
		}},
		{"segments deleted, the position file lost", func(t *testing.T, dir string, bases []uint64) (uint64, uint64) {
			for _, b := range bases[:4] {
				if err := os.RemoveAll(seg(dir, b)); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Remove(filepath.Join(dir, "shipped")); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			return bases[4] + 2, bases[4] // shipped before the position was lost
		}},
		{"a torn position file beside the position", func(t *testing.T, dir string, bases []uint64) (uint64, uint64) {
			writeShipped(t, dir, bases[1])
			if err := os.WriteFile(filepath.Join(dir, "shipped.tmp"), []byte("99"), 0o640); err != nil {
				t.Fatal(err)
			}
			return bases[1], bases[1]
		}},
		{"everything shipped, the last segment kept", func(t *testing.T, dir string, bases []uint64) (uint64, uint64) {
			writeShipped(t, dir, 200)
			return 200, bases[len(bases)-1]
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			bases := build(t, dir)
			if len(bases) < 6 {
				t.Fatalf("segments %v", bases)
			}
			held, first := c.crash(t, dir, bases)
			ledger, central := newIngestLedger(t)
			ledger.acked = held
			for s := range held {
				ledger.ids[s+1] = fmt.Sprintf("d-%d", s)
			}
			ledger.setDown(true) // nothing shipped (or pruned) while the test reads
			s := shippingSidecar(t, central.URL, dir, SpoolSync, testSegBytes)
			if got := s.spool.first(); got != first {
				t.Fatalf("first segment %d, want %d (segments %v)", got, first, segmentBases(t, dir))
			}
			if got := segmentBases(t, dir); got[0] != first {
				t.Fatalf("segments on disk %v, want from %d", got, first)
			}
			checkSpool(t, s.spool, first)
			ledger.setDown(false)
			addAnswers(t, s.spool, 200, 230)
			waitShipped(t, s, 230)
			ledger.check(t, 0, 230)
		})
	}
}

// TestSpoolRefusesInconsistentSegments: two directories for one base do
// not open; a sealed segment holding seqs its successor claims is not
// shipped (shipping is stuck, said on readyz) rather than shipping some
// answer under another answer's seq.
func TestSpoolRefusesInconsistentSegments(t *testing.T) {
	t.Run("two segments at one base", func(t *testing.T) {
		dir := t.TempDir()
		writeLegacySpool(t, dir, 3)
		if err := os.Mkdir(filepath.Join(dir, segmentName(0)), 0o750); err != nil {
			t.Fatal(err)
		}
		if sp, err := openSpool(dir, SpoolSync, testSegBytes, nil); !errors.Is(err, errSegment) {
			if sp != nil {
				_ = sp.close()
			}
			t.Fatalf("openSpool: %v, want errSegment", err)
		}
	})
	t.Run("a segment longer than its span", func(t *testing.T) {
		dir := t.TempDir()
		writeLegacySpool(t, dir, 30)
		if err := os.Mkdir(filepath.Join(dir, segmentName(20)), 0o750); err != nil {
			t.Fatal(err)
		}
		ledger, central := newIngestLedger(t)
		s := shippingSidecar(t, central.URL, dir, SpoolSync, MinSpoolSegmentBytes)
		if _, _, _, err := s.spool.reader(0); !errors.Is(err, errSegment) {
			t.Fatalf("reader(0): %v, want errSegment", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for s.Status().ShipError == "" && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if st := s.Status(); !strings.Contains(st.ShipError, "inconsistent segments") {
			t.Errorf("readyz ship_error %q", st.ShipError)
		}
		ledger.check(t, 0, 0)
	})
}

// TestShippingSkipsASegmentsLostRecords: a sealed segment holding fewer
// records than its span (a disk that lost fsynced records) is shipped as
// it is, and the seqs it lacks are skipped, never reused.
func TestShippingSkipsASegmentsLostRecords(t *testing.T) {
	dir := t.TempDir()
	writeLegacySpool(t, dir, 30) // its span runs to 40: 30..39 are lost
	if err := os.Mkdir(filepath.Join(dir, segmentName(40)), 0o750); err != nil {
		t.Fatal(err)
	}
	ledger, central := newIngestLedger(t)
	s := shippingSidecar(t, central.URL, dir, SpoolSync, MinSpoolSegmentBytes)
	for i := uint64(40); i < 50; i++ {
		if err := s.spool.add(context.Background(), answerRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitShipped(t, s, 50)
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	for seq := uint64(0); seq < 50; seq++ {
		want := fmt.Sprintf("d-%d", seq)
		if seq >= 30 && seq < 40 {
			want = ""
		}
		if got := ledger.ids[seq+1]; got != want {
			t.Errorf("ingest seq %d holds %q, want %q", seq+1, got, want)
		}
	}
	if len(ledger.bad) > 0 || len(ledger.ids) != 40 {
		t.Errorf("the central trail holds %d records (%v)", len(ledger.ids), ledger.bad)
	}
}

// TestSpoolSegmentBytesValidated: spool_segment_bytes is a size between
// 64 KiB and 4 GiB.
func TestSpoolSegmentBytesValidated(t *testing.T) {
	for _, c := range []struct {
		bytes int64
		ok    bool
	}{
		{DefaultSpoolSegmentBytes, true}, {MinSpoolSegmentBytes, true}, {MaxSpoolSegmentBytes, true},
		{0, false}, {-1, false}, {MinSpoolSegmentBytes - 1, false}, {MaxSpoolSegmentBytes + 1, false},
	} {
		cfg := DefaultConfig()
		cfg.SpoolSegmentBytes = c.bytes
		err := cfg.Validate()
		if (err == nil) != c.ok || err != nil && (!errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "spool_segment_bytes")) {
			t.Errorf("spool_segment_bytes %d: %v, want ok %v", c.bytes, err, c.ok)
		}
	}
}

// TestSidecarMetricsShowTheSpool: /metrics says the spool's bytes on disk
// and segments.
func TestSidecarMetricsShowTheSpool(t *testing.T) {
	ledger, central := newIngestLedger(t)
	ledger.setDown(true)
	dir := t.TempDir()
	s := shippingSidecar(t, central.URL, dir, SpoolSync, MinSpoolSegmentBytes)
	addAnswers(t, s.spool, 0, 600)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	segs := len(segmentBases(t, dir))
	for _, want := range []string{
		fmt.Sprintf("pdp_sidecar_spool_segments %d\n", segs),
		fmt.Sprintf("pdp_sidecar_spool_bytes %g\n", float64(s.spool.diskUsage())),
		"pdp_sidecar_spool_unshipped_records 600\n",
	} {
		if res.StatusCode != http.StatusOK || !strings.Contains(string(data), want) {
			t.Errorf("/metrics: %d, no %q in\n%s", res.StatusCode, want, data)
		}
	}
	if segs < 2 {
		t.Errorf("%d segments", segs)
	}
}

// FuzzParseSegmentName: a segment directory's name gives its base back;
// any other name is not a segment, and nothing panics.
func FuzzParseSegmentName(f *testing.F) {
	for _, s := range []string{"spool", "spool.00000000000000000000", "spool.18446744073709551615", "spool.18446744073709551616", "spool.", "spool.-1", "spool.1e3", "shipped", "spool.0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		base, ok, err := parseSegmentName(name)
		if err != nil && ok {
			t.Fatalf("%q: ok and error %v", name, err)
		}
		if ok && name != legacySpool {
			if got, ok2, _ := parseSegmentName(segmentName(base)); !ok2 || got != base {
				t.Fatalf("%q: base %d does not round-trip through %q", name, base, segmentName(base))
			}
			if !strings.HasPrefix(name, segmentPrefix) {
				t.Fatalf("%q read as a segment", name)
			}
		}
	})
}
