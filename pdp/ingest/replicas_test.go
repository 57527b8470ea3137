package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/trail"
	"github.com/ciampdp/pdp/pdp/trail/pgtrail"
)

// sharedTrail opens n replicas' logs on one fresh schema of the test
// database (skipped without it).
func sharedTrail(t *testing.T, n int) []*pgtrail.Log {
	t.Helper()
	base := os.Getenv("PDP_TEST_POSTGRES_URL")
	if base == "" {
		t.Skip("SKIPPED: PDP_TEST_POSTGRES_URL is not set: ingest across replicas is NOT tested")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "ingest_t_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Error(err)
		}
	})
	logs := make([]*pgtrail.Log, n)
	for i := range logs {
		l, err := pgtrail.Open(t.Context(), base, pgtrail.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		logs[i] = l
	}
	return logs
}

// sidecarRecords counts the sidecar records of the trail by spool seq.
func sidecarRecords(t *testing.T, l *pgtrail.Log) map[uint64]int {
	t.Helper()
	size, err := l.SizeContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64]int{}
	if err := l.Scan(0, size, func(r trail.Record) error {
		if r.Kind == trail.KindSidecar {
			var b trail.SidecarBody
			if err := jsonUnmarshal(r.Body, &b); err != nil {
				return err
			}
			got[b.SpoolSeq]++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestIngestOnceAcrossReplicas: a batch stored through replica A and
// retried through B (A died after its commit) is skipped by B; a batch
// sent to both at once is stored once; records stored by A before B
// started are not stored again by B.
func TestIngestOnceAcrossReplicas(t *testing.T) {
	logs := sharedTrail(t, 2)
	ctx := context.Background()
	// Both started before anything was stored: their positions in memory
	// say nothing.
	a, err := New(ctx, logs[0], logs[0], Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(ctx, logs[1], logs[1], Options{})
	if err != nil {
		t.Fatal(err)
	}
	batch := []Record{record(t, "sc", 1, false), record(t, "sc", 2, false)}
	if got, err := a.Ingest(ctx, "app", "sc", batch); err != nil || got != (Result{Ingested: 2, Acked: 2}) {
		t.Fatalf("through A: %+v %v", got, err)
	}
	if got, err := b.Ingest(ctx, "app", "sc", batch); err != nil || got != (Result{Skipped: 2, Acked: 2}) {
		t.Fatalf("the retry through B: %+v %v, want both skipped", got, err)
	}
	// A retry that carries one more record.
	more := append(batch, record(t, "sc", 3, false))
	if got, err := b.Ingest(ctx, "app", "sc", more); err != nil || got != (Result{Ingested: 1, Skipped: 2, Acked: 3}) {
		t.Fatalf("a longer retry through B: %+v %v", got, err)
	}
	// The same batch at both replicas at once.
	next := []Record{record(t, "sc", 4, false), record(t, "sc", 5, false)}
	var wg sync.WaitGroup
	results := make([]Result, 2)
	for i, in := range []*Ingest{a, b} {
		wg.Go(func() {
			var err error
			if results[i], err = in.Ingest(ctx, "app", "sc", next); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := results[0].Ingested + results[1].Ingested; n != 2 {
		t.Errorf("the same batch at both replicas: %+v, want 2 stored in all", results)
	}
	for seq, n := range sidecarRecords(t, logs[0]) {
		if n != 1 {
			t.Errorf("spool seq %d stored %d times", seq, n)
		}
	}
	if got := len(sidecarRecords(t, logs[0])); got != 5 {
		t.Errorf("%d spool seqs stored, want 5", got)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
