package adminlog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// BenchmarkCheck measures the start-up check on a trail of
// PDP_BENCH_TRAIL_RECORDS decision records (default 100 000, each about
// 1.5 KB, as the engine writes) and 1 000 delegation and consent changes,
// all present in file stores.
func BenchmarkCheck(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("PDP_BENCH_TRAIL_RECORDS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	dir := b.TempDir()
	l, err := trail.OpenFile(filepath.Join(dir, "trail"), trail.FileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rec, err := recorder.NewRecorder(nil, l, recorder.RecorderOptions{Instance: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	ds, err := delegation.OpenFile(filepath.Join(dir, "d.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	cs, err := consent.OpenFile(filepath.Join(dir, "c.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer cs.Close()
	var j Journal
	j.Set(rec)
	body := []byte(`{"decision":"deny","input":` + `"` + strings.Repeat("x", 1400) + `"}`)
	batch := make([]trail.Record, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, trail.Record{Kind: "decision", ID: fmt.Sprint(i), Time: time.Now(), Body: body})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := l.Append(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	by := delegation.Actor{Application: "bench", Subject: delegation.Ref{Type: "user", ID: "alice"}}
	for i := 0; i < 500; i++ {
		d := record(fmt.Sprintf("dlg-%d", i), 1, delegation.StatusOffered)
		if err := j.RecordDelegation(ctx, delegation.Change{Action: "delegation.offer", By: by, Delegation: d}); err != nil {
			b.Fatal(err)
		}
		if err := ds.Create(ctx, d); err != nil {
			b.Fatal(err)
		}
		e := event(fmt.Sprintf("cev-%d", i), "alice", consent.EventGiven)
		if err := j.RecordConsent(ctx, consent.Change{Action: "consent.give", Events: []consent.Event{e}}); err != nil {
			b.Fatal(err)
		}
		if _, err := cs.Append(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep, err := Check(ctx, l, ds, cs)
		if err != nil || len(rep.Missing) != 0 || rep.Changes != 1000 {
			b.Fatalf("Check: %d changes, %d missing, %v", rep.Changes, len(rep.Missing), err)
		}
	}
	b.ReportMetric(float64(l.Size()), "records")
}
