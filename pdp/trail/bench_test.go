package trail

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkAppend measures durable appends: each Append returns after its
// record is fsynced. records/s is durable throughput; batch is the average
// number of records per write+fsync.
func BenchmarkAppend(b *testing.B) {
	for _, bc := range []struct {
		goroutines int
		window     time.Duration
	}{{1, 0}, {32, 0}, {32, 100 * time.Microsecond}, {32, 500 * time.Microsecond}} {
		b.Run(fmt.Sprintf("goroutines=%d/window=%v", bc.goroutines, bc.window), func(b *testing.B) {
			l, err := OpenFile(b.TempDir(), FileOptions{BatchWindow: bc.window})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			rec := mkRec(1)
			ctx := context.Background()
			b.ReportAllocs()
			if bc.goroutines == 1 {
				for b.Loop() {
					if _, err := l.Append(ctx, rec); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(max(1, bc.goroutines/runtime.GOMAXPROCS(0)))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := l.Append(ctx, rec); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			st := l.Stats()
			b.ReportMetric(float64(st.Records)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(st.Records)/float64(max(st.Batches, 1)), "batch")
		})
	}
}

// BenchmarkVerify checks a 100,000-record log (realistic ~2 KB bodies)
// against its signed checkpoint; records/s is the verify rate.
func BenchmarkVerify(b *testing.B) {
	s, vkey := newKeys(b)
	l, err := OpenFile(b.TempDir(), FileOptions{Signer: s})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const n = 100000
	body := make([]byte, 0, 2048)
	body = append(body, `{"decision":{"input":{"context":{"pad":"`...)
	for len(body) < 1950 {
		body = append(body, 'x')
	}
	body = append(body, `"}}}}`...)
	batch := make([]Record, 1000)
	for i := range batch {
		batch[i] = Record{Kind: "decision", ID: fmt.Sprintf("d-%d", i), Time: time.Unix(1700000000, 0), Body: body}
	}
	for range n / len(batch) {
		if _, err := l.Append(context.Background(), batch...); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := l.Checkpoint(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		rep, err := l.Verify(context.Background(), vkey, 0, n)
		if err != nil || !rep.OK {
			b.Fatalf("%v %+v", err, rep)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}
