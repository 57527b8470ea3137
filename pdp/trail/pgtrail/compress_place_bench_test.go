package pgtrail

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// BenchmarkPostgresCompressPlacement is the compression of an Append alone
// (no database), where the log could run it: on the 32 callers' goroutines
// (each compressing its own record, then yielding as it would to wait for
// its commit, as pgtrail did before) or on the one
// committer goroutine (a batch after another, as it does now). cpu-µs/op is
// this process's CPU per record (getrusage); run it with -cpu 2 for the
// machine's share. Both use the trail's dictionary of ~2 KB
// Northbank-like records.
func BenchmarkPostgresCompressPlacement(b *testing.B) {
	for _, mode := range []string{trail.CompressionS2, trail.CompressionZstd} {
		var sample []byte
		for i := 0; len(sample) < trail.DefaultDictionarySize; i++ {
			enc, err := trail.Canonical(mkNorthbankish(i))
			if err != nil {
				b.Fatal(err)
			}
			sample = append(sample, enc[len(seqPrefix):]...)
		}
		dict, _, err := trail.NewDictionary(mode, sample, trail.DefaultDictionarySize, epoch)
		if err != nil {
			b.Fatal(err)
		}
		d := &pgDict{seq: 1, d: dict}
		recs := make([]pgPending, 1024)
		for i := range recs {
			rec := mkNorthbankish(100000 + i)
			enc, err := trail.Canonical(rec)
			if err != nil {
				b.Fatal(err)
			}
			recs[i] = pgPending{kind: rec.Kind, enc: enc}
		}
		report := func(b *testing.B, cpu0 time.Duration) {
			b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
		}
		b.Run(mode+"/callers=32", func(b *testing.B) {
			var next atomic.Int64
			b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
			cpu0 := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p := recs[next.Add(1)%int64(len(recs))]
					d.compress(&p)
					runtime.Gosched() // a caller waits for its commit: the others run
				}
			})
			report(b, cpu0)
		})
		b.Run(mode+"/committer", func(b *testing.B) {
			cpu0 := processCPU()
			i := 0
			for b.Loop() {
				p := recs[i%len(recs)]
				d.compress(&p)
				i++
			}
			report(b, cpu0)
		})
	}
}
