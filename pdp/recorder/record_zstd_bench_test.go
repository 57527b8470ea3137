package recorder

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ciampdp/pdp/pdp/trail"
)

// BenchmarkRecordDecisionCompression is BenchmarkRecordDecision (sync)
// with the trail's compression off, s2 and zstd, side by side: process CPU
// per decision and bytes per record on disk.
func BenchmarkRecordDecisionCompression(b *testing.B) {
	bodies := northbankBodies(b)
	for _, comp := range []string{trail.CompressionOff, trail.CompressionS2, trail.CompressionZstd} {
		b.Run(comp, func(b *testing.B) {
			s, _ := newKeys(b)
			l := openLog(b, b.TempDir(), trail.FileOptions{Signer: s, Compression: comp})
			r, err := NewRecorder(replayDecider{bodies}, l, RecorderOptions{Mode: ModeSync, Instance: "pdp-1", Build: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetParallelism(16) // 32 callers on 2 cores
			cpu0 := cpuTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req := bodies[0].Request
				for pb.Next() {
					if d, err := r.Decide(context.Background(), req); err != nil || len(d.Reasons) == 1 && d.Reasons[0] == ReasonTrailUnavailable {
						b.Error("not recorded", err)
						return
					}
				}
			})
			if err := r.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			hs, _ := os.Stat(filepath.Join(l.dir, "hashes.bin"))
			b.ReportMetric(float64(l.Stats().RecordBytes+hs.Size())/float64(l.Size()), "bytes/record")
		})
	}
}
