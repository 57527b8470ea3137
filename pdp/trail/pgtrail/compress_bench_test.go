package pgtrail

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// BenchmarkPostgresAppendCompression is BenchmarkPostgresAppend with
// trail.compression off, s2 and zstd, 32 callers on one replica, ~2 KB
// records (fresh ids and times), after the dictionary is made. cpu-µs/op
// is this process's CPU per record (canonical encoding, compression, the
// client side of the transactions; getrusage); the server's CPU is not in
// it (TestNorthbankPostgresBytesPerDecision in pdp/audit measures it).
func BenchmarkPostgresAppendCompression(b *testing.B) {
	for _, mode := range []string{trail.CompressionOff, trail.CompressionS2, trail.CompressionZstd} {
		b.Run(mode, func(b *testing.B) {
			db := newPGDB(b)
			l := db.open(Options{Compression: mode})
			appendNorthbankish(b, l, 0, 200) // past the dictionary
			if mode != trail.CompressionOff && l.cur.Load() == nil {
				b.Fatal("no dictionary after 200 records")
			}
			var next atomic.Int64
			next.Store(1000)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
			cpu0 := processCPU()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Append(ctx, mkNorthbankish(int(next.Add(1)))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

func appendNorthbankish(t testing.TB, l *Log, from, n int) {
	t.Helper()
	for i := from; i < from+n; i += 10 {
		var recs []trail.Record
		for k := range 10 {
			recs = append(recs, mkNorthbankish(i+k))
		}
		if _, err := l.Append(context.Background(), recs...); err != nil {
			t.Fatal(fmt.Errorf("append: %w", err))
		}
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
