package audit

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// TestNorthbankCompressedBytesPerDecision writes the Northbank mix of
// TestNorthbankBytesPerDecision into a trail with per-record compression
// (trail.compression: s2, the default, and zstd) and holds both to issue
// 15's 500 bytes per decision, records.log, dictionary and hashes.bin
// included. It
// reads every record back and verifies the trail, timing both.
// PDP_TRAIL_BYTES sets the number of decisions (default 5000).
func TestNorthbankCompressedBytesPerDecision(t *testing.T) {
	n := trailBytesN(t)
	rc := record(t)
	bodies := mixBodies(t, rc)

	for _, mode := range []string{trail.CompressionOff, trail.CompressionS2, trail.CompressionZstd} {
		dir := t.TempDir()
		signer, vkey := trailKeys(t)
		l, err := trail.OpenFile(dir, trail.FileOptions{Compression: mode, Signer: signer})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
		var batch []trail.Record
		bodyBytes := map[string]int{}
		cpu0 := cpuTime()
		for i := range n {
			b, body := mixDecision(t, bodies, i, t0)
			bodyBytes[b.Decision.ID] = len(body)
			batch = append(batch, trail.CompactRecord(recorder.KindDecision, b.Decision.ID, b.Decision.Time, body))
			if len(batch) == 64 || i == n-1 {
				if _, err := l.Append(context.Background(), batch...); err != nil {
					t.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		writeCPU := (cpuTime() - cpu0) / time.Duration(n)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		size := func(name string) int64 {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			return fi.Size()
		}
		perDecision := float64(size("records.log")+size("hashes.bin")) / float64(n)

		l, err = trail.OpenFile(dir, trail.FileOptions{Compression: mode})
		if err != nil {
			t.Fatal(err)
		}
		scan, verify, dictionaries := readBack(t, l, vkey, bodyBytes, n)
		_ = l.Close()
		t.Logf("compression %s: %d decisions, %.0f bytes per decision (records.log %d, hashes.bin %d bytes; %d dictionaries); append CPU %v per decision; scan %.0f records/s, verify %.0f records/s",
			mode, n, perDecision, size("records.log"), size("hashes.bin"), dictionaries, writeCPU, float64(l.Size())/scan.Seconds(), float64(l.Size())/verify.Seconds())
		if mode != trail.CompressionOff && n >= 5000 && perDecision > 500 {
			t.Errorf("%s: %.0f bytes per decision, want ≤ 500", mode, perDecision)
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func trailKeys(t testing.TB) (note.Signer, string) {
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

// readTrail is what readBack reads: the file and the PostgreSQL trail.
type readTrail interface {
	Size() uint64
	Scan(from, to uint64, fn func(trail.Record) error) error
	Verify(ctx context.Context, verifierKey string, from, to uint64) (trail.Report, error)
}

// readBack reads every record of l, checks that each of the n decisions
// reads back as many body bytes as bodyBytes says were written, verifies
// l against vkey, and returns how long the scan and the verify took and
// how many dictionary records it met.
func readBack(t *testing.T, l readTrail, vkey string, bodyBytes map[string]int, n int) (scan, verify time.Duration, dictionaries int) {
	t.Helper()
	start := time.Now()
	read := 0
	if err := l.Scan(0, l.Size(), func(r trail.Record) error {
		if r.Kind == trail.KindDictionary {
			dictionaries++
		}
		if r.Kind == recorder.KindDecision {
			if len(r.Body) != bodyBytes[r.ID] {
				t.Fatalf("decision %s reads back %d bytes, wrote %d", r.ID, len(r.Body), bodyBytes[r.ID])
			}
			read++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	scan = time.Since(start)
	start = time.Now()
	rep, err := l.Verify(context.Background(), vkey, 0, l.Size())
	if err != nil || !rep.OK {
		t.Fatalf("verify: %v %v", rep, err)
	}
	verify = time.Since(start)
	if read != n {
		t.Fatalf("read %d decisions, wrote %d", read, n)
	}
	return scan, verify, dictionaries
}
