package audit

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ciampdp/pdp/pdp/trail"
)

// copies appends the records of src n times to a fresh log stored with
// compression (trail.compression; "" is off): a trail of realistic
// Northbank decisions (facts, delegations, consent) of any size.
func copies(b *testing.B, src *trail.FileLog, n int, compression string) *trail.FileLog {
	b.Helper()
	dir := b.TempDir()
	l, err := trail.OpenFile(dir, trail.FileOptions{Compression: compression})
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
	b.Logf("trail size: %d records, %.0f bytes per record (records.log + hashes.bin)", l.Size(), float64(size)/float64(l.Size()))
	return l
}

// BenchmarkReplay replays a trail of Northbank decisions under the archived
// versions they name, stored uncompressed and with each codec (every
// record decompressed on the way); decisions/s is the replay rate (target
// ≥ 50,000/s).
func BenchmarkReplay(b *testing.B) {
	for _, compression := range []string{trail.CompressionOff, trail.CompressionS2, trail.CompressionZstd} {
		b.Run(compression, func(b *testing.B) {
			rc := record(b)
			l := copies(b, rc.log, 300, compression)
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

// BenchmarkWhatIf replays the same trail under a proposed version.
func BenchmarkWhatIf(b *testing.B) {
	rc := record(b)
	l := copies(b, rc.log, 300, trail.CompressionOff)
	b.ResetTimer()
	var n uint64
	for b.Loop() {
		rep, err := WhatIf(context.Background(), l, rc.v2, ReplayOptions{})
		if err != nil {
			b.Fatal(err)
		}
		n += rep.Decisions
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "decisions/s")
}
