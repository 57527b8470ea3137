package adminlog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// BenchmarkCheckSignals measures the start-up check of the signal ledger
// and the revalidations: PDP_BENCH_SIGNALS received SETs (default 10 000,
// one event each) and a tenth as many revalidations, all recorded in the
// trail and present in file stores.
func BenchmarkCheckSignals(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("PDP_BENCH_SIGNALS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	st := openFactStores(b, "file")
	l, err := trail.OpenFile(filepath.Join(b.TempDir(), "trail"), trail.FileOptions{})
	mustTB(b, err)
	defer l.Close()
	rec, err := recorder.NewRecorder(nil, l, recorder.RecorderOptions{Instance: "bench"})
	mustTB(b, err)
	var j Journal
	j.Set(rec)
	for i := 0; i < n; i++ {
		s := set("https://risk.example/", fmt.Sprintf("jti-%d", i), "credential-compromise")
		if err := j.RecordSignal(ctx, s.Transmitter, s.JTI, s.Events); err != nil {
			b.Fatal(err)
		}
		if _, err := st.ss.Append(ctx, s.Events); err != nil {
			b.Fatal(err)
		}
		if i%10 == 0 {
			r := reval(fmt.Sprintf("rv-%d", i))
			if err := j.RecordRevalidation(ctx, r); err != nil {
				b.Fatal(err)
			}
			if _, err := st.rs.Append(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	}
	stores := Stores{Signals: st.ss, Revalidations: st.rs}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep, err := CheckStores(ctx, l, stores)
		if err != nil || len(rep.Missing) != 0 || rep.Changes != n+n/10 {
			b.Fatalf("CheckStores: %d changes, %d missing, %v", rep.Changes, len(rep.Missing), err)
		}
	}
}
