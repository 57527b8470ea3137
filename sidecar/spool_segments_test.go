package sidecar

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
