package pgtrail

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/ciampdp/pdp/pdp/trail"
)

// BenchmarkPostgresAppend measures committed appends to the shared chain:
// each Append returns after its transaction committed. records/s is
// throughput over all replicas; batch is the average number of records per
// transaction. replicas > 1 opens that many PostgresLogs on one schema, as
// separate PDP processes would, and spreads the goroutines over them.
func BenchmarkPostgresAppend(b *testing.B) {
	for _, bc := range []struct{ replicas, goroutines int }{{1, 1}, {1, 32}, {3, 32}} {
		b.Run(fmt.Sprintf("replicas=%d/goroutines=%d", bc.replicas, bc.goroutines), func(b *testing.B) {
			db := newPGDB(b)
			logs := make([]*Log, bc.replicas)
			for i := range logs {
				logs[i] = db.open(Options{})
			}
			rec := mkRec(1)
			ctx := context.Background()
			b.ReportAllocs()
			if bc.goroutines == 1 {
				for b.Loop() {
					if _, err := logs[0].Append(ctx, rec); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				var next atomic.Int64
				b.SetParallelism(max(1, bc.goroutines/runtime.GOMAXPROCS(0)))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					l := logs[int(next.Add(1))%len(logs)]
					for pb.Next() {
						if _, err := l.Append(ctx, rec); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			var st trail.Stats
			for _, l := range logs {
				s := l.Stats()
				st.Records, st.Batches = st.Records+s.Records, st.Batches+s.Batches
			}
			b.ReportMetric(float64(st.Records)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(st.Records)/float64(max(st.Batches, 1)), "batch")
		})
	}
}
