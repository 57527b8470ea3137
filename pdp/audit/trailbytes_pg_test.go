package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
	"github.com/ciampdp/pdp/pdp/trail/pgtrail"
)

// TestNorthbankPostgresBytesPerDecision is TestNorthbankCompressedBytesPerDecision
// on the PostgreSQL trail: the same Northbank mix appended in batches of 64
// with trail.compression off, s2 and zstd, each into a schema of its own.
// Bytes per decision are pg_total_relation_size of trail_records and
// trail_hashes (heap, TOAST and indexes) over the decisions; with
// compression off PostgreSQL's own TOAST compression (pglz) is what
// shrinks the rows it takes. CPU per decision is the test process's
// during the Append calls (canonical encoding, compression, the client
// side of the transactions) and the server backends' of the log (from
// /proc, when readable). Every record
// is read back and the trail verified. Compression must at least halve
// the bytes (issue 15's 500 is not reached on PostgreSQL: its row, index
// and stored-hash overheads alone are about 500; see BENCHMARKS.md).
// PDP_TRAIL_BYTES sets the number of decisions (default 5000); skipped
// loudly without PDP_TEST_POSTGRES_URL.
func TestNorthbankPostgresBytesPerDecision(t *testing.T) {
	url := os.Getenv("PDP_TEST_POSTGRES_URL")
	if url == "" {
		fmt.Fprintf(os.Stderr, "\n*** audit: PDP_TEST_POSTGRES_URL is not set: the PostgreSQL trail's bytes per decision are NOT measured.\n\n")
		t.Skip("SKIPPED: PDP_TEST_POSTGRES_URL is not set (export PDP_TEST_POSTGRES_URL=$(scripts/postgres.sh start))")
	}
	n := trailBytesN(t)
	rc := record(t)
	bodies := mixBodies(t, rc)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	var offBytes float64
	for _, mode := range []string{trail.CompressionOff, trail.CompressionS2, trail.CompressionZstd} {
		salt := make([]byte, 6)
		_, _ = rand.Read(salt)
		schema := "trail_bytes_" + hex.EncodeToString(salt)
		t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
		signer, vkey := trailKeys(t)
		// The log's backends are told apart by their application_name.
		sep := "?"
		if strings.Contains(url, "?") {
			sep = "&"
		}
		l, err := pgtrail.Open(ctx, url+sep+"application_name="+schema, pgtrail.Options{Schema: schema, Signer: signer, Compression: mode})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
		var batch []trail.Record
		bodyBytes := map[string]int{}
		var appendCPU time.Duration // around the Append calls only: not the JSON encoding
		start := time.Now()
		for i := range n {
			b, body := mixDecision(t, bodies, i, t0)
			bodyBytes[b.Decision.ID] = len(body)
			batch = append(batch, trail.CompactRecord(recorder.KindDecision, b.Decision.ID, b.Decision.Time, body))
			if len(batch) == 64 || i == n-1 {
				cpu0 := cpuTime()
				if _, err := l.Append(ctx, batch...); err != nil {
					t.Fatal(err)
				}
				appendCPU += cpuTime() - cpu0
				batch = batch[:0]
			}
		}
		writeCPU := appendCPU / time.Duration(n)
		writeTime := time.Since(start)
		serverCPU := backendCPU(t, conn, schema) / time.Duration(n)
		if _, err := l.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		var rel, toast, idx, hashes, bodySum, plainRows, zRows int64
		q := strings.NewReplacer("{s}", schema)
		if err := conn.QueryRow(ctx, q.Replace(`SELECT pg_total_relation_size('{s}.trail_records'),
			coalesce(pg_total_relation_size(nullif(reltoastrelid, 0)), 0), pg_indexes_size('{s}.trail_records'),
			pg_total_relation_size('{s}.trail_hashes')
			FROM pg_class WHERE oid = '{s}.trail_records'::regclass`)).Scan(&rel, &toast, &idx, &hashes); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, q.Replace(`SELECT coalesce(sum(pg_column_size(body)), 0),
			count(*) FILTER (WHERE dict IS NULL), count(*) FILTER (WHERE dict IS NOT NULL) FROM {s}.trail_records`)).Scan(&bodySum, &plainRows, &zRows); err != nil {
			t.Fatal(err)
		}
		perDecision := float64(rel+hashes) / float64(n)

		scan, verify, _ := readBack(t, l, vkey, bodyBytes, n)
		size := l.Size()
		_ = l.Close()
		t.Logf("compression %s: %d decisions, %.0f bytes per decision (trail_records %d: TOAST %d, indexes %d; trail_hashes %d; "+
			"bodies as stored %d bytes on average, %d plain rows, %d compressed); append CPU per decision: test process %v, server backends %v; "+
			"%.0f appends/s; scan %.0f records/s, verify %.0f records/s",
			mode, n, perDecision, rel, toast, idx, hashes, bodySum/max(plainRows+zRows, 1), plainRows, zRows,
			writeCPU, serverCPU, float64(n)/writeTime.Seconds(), float64(size)/scan.Seconds(), float64(size)/verify.Seconds())
		switch {
		case mode == trail.CompressionOff:
			offBytes = perDecision
		case n >= 5000 && perDecision*2 > offBytes:
			t.Errorf("%s: %.0f bytes per decision against %.0f uncompressed (TOAST): want at most half", mode, perDecision, offBytes)
		}
	}
}

// backendCPU is the CPU time the server backends of the connections named
// schema (application_name) have used, read from /proc (0 when the
// server's processes are not readable from here).
func backendCPU(t *testing.T, conn *pgx.Conn, schema string) time.Duration {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, schema)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	var ticks int64
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0
		}
		// Fields after the command (which ends with the last ')'): utime
		// and stime are the 12th and 13th.
		f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ
}
