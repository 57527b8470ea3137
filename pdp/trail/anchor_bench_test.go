package trail

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkAppendCheckpointed measures durable appends from 32 goroutines
// while Run writes checkpoints at the given interval: the cost of bounding
// the unanchored window (1m was the old default, 1s the new one).
// checkpoints is the number written during the run.
func BenchmarkAppendCheckpointed(b *testing.B) {
	for _, every := range []time.Duration{time.Minute, time.Second, 100 * time.Millisecond} {
		b.Run(fmt.Sprintf("interval=%v", every), func(b *testing.B) {
			signer, _ := newKeys(b)
			l, err := OpenFile(b.TempDir(), FileOptions{Signer: signer, CheckpointInterval: every})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- l.Run(ctx) }()
			rec := mkRec(1)
			b.ReportAllocs()
			b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Append(ctx, rec); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(l.Stats().Records)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(len(l.Checkpoints())), "checkpoints")
		})
	}
}
