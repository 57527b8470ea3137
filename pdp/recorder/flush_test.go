package recorder

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// TestAsyncFlushIntervalGathersBatches: in async mode the writer gathers
// the records that arrive within the flush interval of a batch's first one
// into one write and fsync; a full batch is written without waiting; every
// record is written by Close.
func TestAsyncFlushIntervalGathersBatches(t *testing.T) {
	for _, tc := range []struct {
		name       string
		interval   time.Duration
		maxBatch   int
		decisions  int
		maxBatches uint64
	}{
		// 200 decisions from 8 callers take far less than a second here:
		// one or two batches (the first may start before the rest arrive).
		{"gathered", time.Second, 0, 200, 2},
		// MaxBatch 50: four full batches, none waiting for the interval.
		{"full batches", time.Hour, 50, 200, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openLog(t, t.TempDir(), trail.FileOptions{})
			r, err := NewRecorder(todoEngine(t), l, RecorderOptions{Mode: ModeAsync, FlushInterval: tc.interval, MaxBatch: tc.maxBatch})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for range tc.decisions / 8 {
						if d, err := r.Decide(context.Background(), readTodos("t")); err != nil || !d.Allowed {
							t.Errorf("caller %d: %v %+v", w, err, d)
							return
						}
					}
				})
			}
			wg.Wait()
			if tc.maxBatch > 0 {
				// Full batches go out at once: all written long before the hour.
				deadline := time.Now().Add(10 * time.Second)
				for r.Stats().Written < uint64(tc.decisions) {
					if time.Now().After(deadline) {
						t.Fatalf("full batches not written: %+v", r.Stats())
					}
					time.Sleep(time.Millisecond)
				}
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.maxBatch == 0 && time.Since(start) > tc.interval {
				t.Skipf("the decisions took longer than the interval (%v) on this machine: batches not comparable", time.Since(start))
			}
			if got := l.Size(); got != uint64(tc.decisions) {
				t.Fatalf("%d records, want %d", got, tc.decisions)
			}
			if b := l.Stats().Batches; b == 0 || b > tc.maxBatches {
				t.Fatalf("%d batches (writes and fsyncs) for %d records, want 1 to %d", b, tc.decisions, tc.maxBatches)
			}
		})
	}
}
