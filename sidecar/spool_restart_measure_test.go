package sidecar

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// TestSpoolRestartMeasure measures what a restart with a backlog costs:
// PDP_SPOOL_RESTART_MIB MiB of unshipped answers (~1 KiB each) in
// segments of 64 MiB, then the time to open the spool again and the time
// to open each sealed segment when shipping reaches it. It only measures
// (and checks every answer is read back); it runs when the variable is
// set, e.g. PDP_SPOOL_RESTART_MIB=200.
func TestSpoolRestartMeasure(t *testing.T) {
	mib, _ := strconv.Atoi(os.Getenv("PDP_SPOOL_RESTART_MIB"))
	if mib <= 0 {
		t.Skip("set PDP_SPOOL_RESTART_MIB (e.g. 200) to measure a restart with that backlog")
	}
	const segBytes = 64 << 20
	dir := t.TempDir()
	sp, err := openSpool(dir, SpoolSync, segBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 900)
	batch := make([]trail.Record, 1024)
	n := uint64(0)
	start := time.Now()
	for totalBytes(sp) < int64(mib)<<20 {
		for i := range batch {
			batch[i] = trail.Record{Kind: KindAnswer, ID: fmt.Sprintf("d-%d", n), Time: time.Now().UTC(), Body: fmt.Appendf(nil, `{"n":%d,"pad":%q}`, n, pad)}
			n++
		}
		if err := sp.append(context.Background(), batch...); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d answers, %d MiB in %d segments, in %v", n, totalBytes(sp)>>20, sp.segments(), time.Since(start).Round(time.Millisecond))
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	sp, err = openSpool(dir, SpoolSync, segBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restart (openSpool): %v", time.Since(start).Round(time.Millisecond))
	defer sp.close()
	for i := 0; i < sp.segments()-1; i++ {
		start = time.Now()
		if _, _, _, err := sp.reader(sp.segs[i].base); err != nil {
			t.Fatal(err)
		}
		t.Logf("open sealed segment %d for shipping: %v", i, time.Since(start).Round(time.Millisecond))
	}
	start = time.Now()
	next := uint64(0)
	if err := sp.read(0, sp.size(), func(seq uint64, r trail.Record) error {
		if seq != next {
			return fmt.Errorf("seq %d, want %d", seq, next)
		}
		next++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if next != n {
		t.Fatalf("read %d answers, wrote %d", next, n)
	}
	t.Logf("read every answer back: %v", time.Since(start).Round(time.Millisecond))
}

// totalBytes is the spool's record bytes across its segments.
func totalBytes(sp *spool) int64 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	var b int64
	for _, seg := range sp.segs {
		if seg.log != nil {
			b += seg.log.Stats().RecordBytes
		}
	}
	return b
}
