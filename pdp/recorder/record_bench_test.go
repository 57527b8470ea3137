package recorder

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/trail"
)

// replayDecider answers every request with a recorded Northbank decision
// (a fresh id each time), so that the benchmark measures the recording
// alone.
type replayDecider struct{ bodies []DecisionBody }

func (d replayDecider) Decide(_ context.Context, req pdp.Request) (pdp.Decision, error) {
	b := d.bodies[len(req.Subject.ID)%len(d.bodies)]
	out := b.Decision
	out.ID = req.Resource.ID
	out.Time = time.Now().UTC()
	return out, nil
}

func (d replayDecider) DecideBatch(ctx context.Context, reqs []pdp.Request) ([]pdp.Decision, error) {
	out := make([]pdp.Decision, len(reqs))
	for i, r := range reqs {
		out[i], _ = d.Decide(ctx, r)
	}
	return out, nil
}

func northbankBodies(tb testing.TB) []DecisionBody {
	raw, err := os.ReadFile(filepath.Join("testdata", "records", "northbank.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var out []DecisionBody
	for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		out = append(out, decodeBody(tb, line))
	}
	return out
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecordDecision: a recorded Northbank decision through the
// Recorder into a file trail (fsync on), 32 concurrent callers; reports
// the process CPU per decision (cpu-ns/op) beside the wall time.
func BenchmarkRecordDecision(b *testing.B) {
	bodies := northbankBodies(b)
	for _, mode := range []string{ModeSync, ModeAsync} {
		b.Run(mode, func(b *testing.B) { benchRecord(b, bodies, mode, trail.CompressionOff) })
	}
}

// BenchmarkRecordDecisionCompression is BenchmarkRecordDecision (sync)
// with the trail's compression off, s2 and zstd, side by side: process CPU
// per decision and bytes per record on disk.
func BenchmarkRecordDecisionCompression(b *testing.B) {
	bodies := northbankBodies(b)
	for _, comp := range []string{trail.CompressionOff, trail.CompressionS2, trail.CompressionZstd} {
		b.Run(comp, func(b *testing.B) { benchRecord(b, bodies, ModeSync, comp) })
	}
}

// benchRecord records b.N decisions in mode into a trail stored with
// compression and reports CPU, bytes and records per write.
func benchRecord(b *testing.B, bodies []DecisionBody, mode, compression string) {
	s, _ := newKeys(b)
	l := openLog(b, b.TempDir(), trail.FileOptions{Signer: s, Compression: compression})
	r, err := NewRecorder(replayDecider{bodies}, l, RecorderOptions{Mode: mode, Instance: "pdp-1", Build: "bench"})
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
	if st := l.Stats(); st.Batches > 0 {
		b.ReportMetric(float64(st.Records)/float64(st.Batches), "records/batch")
	}
}
