package audit

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ciampdp/pdp/pdp/trail"
)

// copiesCompressed is copies into a trail that compresses its records
// with codec (trail.compression: s2 or zstd).
func copiesCompressed(b *testing.B, src *trail.FileLog, n int, codec string) *trail.FileLog {
	b.Helper()
	dir := b.TempDir()
	l, err := trail.OpenFile(dir, trail.FileOptions{Compression: codec})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	var recs []trail.Record
	if err := src.Scan(0, src.Size(), func(r trail.Record) error { recs = append(recs, r); return nil }); err != nil {
		b.Fatal(err)
	}
	for range n {
		if _, err := l.Append(context.Background(), recs...); err != nil {
			b.Fatal(err)
		}
	}
	size := l.Stats().RecordBytes // the records file holds preallocated zeros while open
	if fi, err := os.Stat(filepath.Join(dir, "hashes.bin")); err == nil {
		size += fi.Size()
	}
	b.Logf("compressed trail: %d records, %.0f bytes per record (records.log + hashes.bin)", l.Size(), float64(size)/float64(l.Size()))
	return l
}

// BenchmarkReplayCompressed is BenchmarkReplay over a compressed trail:
// every record is decompressed on the way (target ≥ 50,000/s).
func BenchmarkReplayCompressed(b *testing.B) {
	for _, codec := range []string{trail.CompressionS2, trail.CompressionZstd} {
		b.Run(codec, func(b *testing.B) {
			rc := record(b)
			l := copiesCompressed(b, rc.log, 300, codec)
			b.ResetTimer()
			var n uint64
			for b.Loop() {
				rep, err := Replay(context.Background(), l, rc.archive, ReplayOptions{})
				if err != nil || !rep.OK() {
					b.Fatalf("%v: %+v", err, rep.Items)
				}
				n += rep.Decisions
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}
