package pgtrail

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ciampdp/pdp/pdp/trail"
)

// trailPGEnv names the variable that points the tests at PostgreSQL.
const trailPGEnv = "PDP_TEST_POSTGRES_URL"

var pgSkipNotice sync.Once

// pgTrailURL returns the test database, or skips the test loudly.
func pgTrailURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(trailPGEnv)
	if u == "" {
		pgSkipNotice.Do(func() {
			fmt.Fprintf(os.Stderr, "\n*** trail: %s is not set: every PostgreSQL trail test is SKIPPED.\n"+
				"*** Start one with: export %s=$(scripts/postgres.sh start)\n\n", trailPGEnv, trailPGEnv)
		})
		t.Skipf("SKIPPED: %s is not set: the PostgreSQL trail store is NOT tested (export %s=$(scripts/postgres.sh start))", trailPGEnv, trailPGEnv)
	}
	return u
}

// pgDB is a fresh schema on the test database, dropped at cleanup (after
// the logs opened later, whose cleanups run first).
type pgDB struct {
	t      testing.TB
	url    string
	schema string
	c      *pgx.Conn // for the test's own SQL
}

func newPGDB(t testing.TB) pgDB {
	t.Helper()
	u := pgTrailURL(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect to %s: %v", trailPGEnv, err)
	}
	db := pgDB{t: t, url: u, schema: "trail_t_" + hex.EncodeToString(b), c: conn}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+db.schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", db.schema, err)
		}
	})
	return db
}

func (db pgDB) open(opts Options) *Log {
	db.t.Helper()
	opts.Schema = db.schema
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Open(ctx, db.url, opts)
	if err != nil {
		db.t.Fatalf("Open: %v", err)
	}
	db.t.Cleanup(func() { _ = l.Close() })
	return l
}

// sql puts the schema's table names in for {records}, {hashes},
// {checkpoints} and {head}.
func (db pgDB) sql(s string) string {
	return strings.NewReplacer("{records}", db.schema+".trail_records", "{hashes}", db.schema+".trail_hashes",
		"{checkpoints}", db.schema+".trail_checkpoints", "{head}", db.schema+".trail_head").Replace(s)
}

func (db pgDB) exec(s string, args ...any) {
	db.t.Helper()
	if _, err := db.c.Exec(context.Background(), db.sql(s), args...); err != nil {
		db.t.Fatalf("%s: %v", s, err)
	}
}

func (db pgDB) count(s string, args ...any) int64 {
	db.t.Helper()
	var n int64
	if err := db.c.QueryRow(context.Background(), db.sql(s), args...).Scan(&n); err != nil {
		db.t.Fatalf("%s: %v", s, err)
	}
	return n
}

func pgAppendN(t testing.TB, l *Log, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		seqs, err := l.Append(context.Background(), mkRec(i))
		if err != nil {
			t.Fatal(err)
		}
		if seqs[0] != uint64(i) {
			t.Fatalf("record %d got seq %d", i, seqs[0])
		}
	}
}

func pgVerify(t *testing.T, l *Log, vkey string) trail.Report {
	t.Helper()
	rep, err := l.Verify(context.Background(), vkey, 0, ^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// The committer splices sequence numbers into records its callers encoded
// with seq 0: the result must be Canonical's.
func TestPostgresSeqSplice(t *testing.T) {
	for _, seq := range []uint64{0, 1, 9, 10, 12345, 1<<63 - 1} {
		rec := mkRec(int(seq % 1000))
		enc, err := trail.Canonical(rec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := withSeq(enc, seq)
		if err != nil {
			t.Fatal(err)
		}
		rec.Seq = seq
		want, _ := trail.Canonical(rec)
		if !bytes.Equal(got, want) {
			t.Fatalf("seq %d:\n%s\n%s", seq, got, want)
		}
	}
}

func TestPostgresFrontier(t *testing.T) {
	// frontier(n) must be exactly what tlog.TreeHash(n) reads.
	for n := int64(1); n < 300; n++ {
		var read []int64
		r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			read = append(read, idx...)
			return make([]tlog.Hash, len(idx)), nil
		})
		if _, err := tlog.TreeHash(n, r); err != nil {
			t.Fatal(err)
		}
		if got := frontier(n); fmt.Sprint(got) != fmt.Sprint(read) {
			t.Fatalf("frontier(%d) = %v, TreeHash reads %v", n, got, read)
		}
	}
}

func TestPostgresOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{CheckpointInterval: -1},
		{MaxBatch: -1},
		{Timeout: -time.Second},
		{Schema: "Trail"},
		{Schema: `x"; DROP TABLE y; --`},
	} {
		if err := o.Validate(); !errors.Is(err, trail.ErrBadOption) {
			t.Errorf("%+v: %v", o, err)
		}
		if _, err := Open(context.Background(), "postgres://127.0.0.1:1/none", o); !errors.Is(err, trail.ErrBadOption) {
			t.Errorf("Open(%+v): %v", o, err)
		}
	}
}

func TestPostgresAppendGetScan(t *testing.T) {
	db := newPGDB(t)
	l := db.open(Options{})
	ctx := context.Background()
	pgAppendN(t, l, 0, 3)
	seqs, err := l.Append(ctx, mkRec(3), mkRec(4), mkRec(5))
	if err != nil || fmt.Sprint(seqs) != "[3 4 5]" {
		t.Fatalf("batch append: %v %v", seqs, err)
	}
	if n, err := l.SizeContext(ctx); err != nil || n != 6 || l.Size() != 6 {
		t.Fatalf("size %d %d %v", l.Size(), n, err)
	}
	for i := range 6 {
		got, err := l.Get(uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		want := mkRec(i)
		if got.Seq != uint64(i) || got.ID != want.ID || !got.Time.Equal(want.Time) {
			t.Fatalf("Get(%d) = %+v", i, got)
		}
		var body map[string]any
		if err := json.Unmarshal(got.Body, &body); err != nil || body["i"] != float64(i) {
			t.Fatalf("Get(%d) body %s", i, got.Body)
		}
	}
	if _, err := l.Get(6); !errors.Is(err, trail.ErrNotFound) {
		t.Fatalf("Get past end: %v", err)
	}
	if r, err := l.GetByID(ctx, "d-0004"); err != nil || r.Seq != 4 {
		t.Fatalf("GetByID: %+v %v", r, err)
	}
	if _, err := l.GetByID(ctx, "nope"); !errors.Is(err, trail.ErrNotFound) {
		t.Fatalf("GetByID unknown: %v", err)
	}

	l.scanChunk = 2 // cross chunk boundaries
	for _, tc := range []struct {
		from, to uint64
		want     string
	}{
		{2, 5, "[d-0002 d-0003 d-0004]"},
		{0, 100, "[d-0000 d-0001 d-0002 d-0003 d-0004 d-0005]"},
		{1, 5, "[d-0001 d-0002 d-0003 d-0004]"},
		{5, 5, "[]"},
		{7, ^uint64(0), "[]"},
	} {
		var ids []string
		if err := l.Scan(tc.from, tc.to, func(r trail.Record) error { ids = append(ids, r.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids) != tc.want {
			t.Errorf("Scan(%d,%d) = %v, want %v", tc.from, tc.to, ids, tc.want)
		}
	}
	stop := errors.New("stop")
	if err := l.Scan(0, 100, func(trail.Record) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("scan stop: %v", err)
	}

	bad := mkRec(9)
	bad.Body = json.RawMessage(`{not json`)
	if _, err := l.Append(ctx, bad); err == nil {
		t.Fatal("invalid body accepted")
	}
	tomb := mkRec(9)
	tomb.Pruned, tomb.Leaf = true, "AAAA"
	if _, err := l.Append(ctx, tomb); err == nil {
		t.Fatal("tombstone appended")
	}
	// Canonical bytes round-trip: the stored body is what is hashed.
	rec := mkRec(6)
	rec.Time = rec.Time.In(time.FixedZone("CET", 3600))
	rec.Body = json.RawMessage("{\n  \"a\": [1, 2]\n}")
	if seqs, err := l.Append(ctx, rec); err != nil || seqs[0] != 6 { // rejected requests took no seq
		t.Fatalf("append: %v %v", seqs, err)
	}
	got, err := l.Get(6)
	if err != nil {
		t.Fatal(err)
	}
	rec.Seq = 6
	a, _ := trail.Canonical(rec)
	b, _ := trail.Canonical(got)
	if !bytes.Equal(a, b) {
		t.Fatalf("canonical bytes differ:\n%s\n%s", a, b)
	}
	if n := db.count("SELECT count(*) FROM {records} WHERE body = $1", a); n != 1 {
		t.Fatalf("stored body is not the canonical bytes (%d matches)", n)
	}
}

// Three replicas share one trail: 32 goroutines append through them while
// a fourth opener checkpoints; the sequence numbers are unique and dense,
// and the one chain verifies.
func TestPostgresConcurrentReplicas(t *testing.T) {
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	logs := make([]*Log, 4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range logs { // opened at once: the DDL is serialised
		wg.Go(func() {
			l, err := Open(context.Background(), db.url, Options{Signer: signer, Schema: db.schema})
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { _ = l.Close() })
			mu.Lock()
			logs[i] = l
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	const workers, each = 32, 30
	seen := make([]int, workers*each)
	stopCP := make(chan struct{})
	cpDone := make(chan error, 1)
	go func() {
		defer close(cpDone)
		for {
			select {
			case <-stopCP:
				return
			default:
			}
			if _, err := logs[3].Checkpoint(); err != nil {
				cpDone <- err
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for w := range workers {
		wg.Go(func() {
			l := logs[w%3]
			for i := range each {
				seqs, err := l.Append(context.Background(), mkRec(w*each+i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[seqs[0]]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stopCP)
	if err := <-cpDone; err != nil {
		t.Fatalf("checkpoint during appends: %v", err)
	}
	for seq, n := range seen {
		if n != 1 {
			t.Fatalf("seq %d assigned %d times", seq, n)
		}
	}
	var records, batches uint64
	for _, l := range logs[:3] {
		st := l.Stats()
		records, batches = records+st.Records, batches+st.Batches
	}
	if records != workers*each {
		t.Fatalf("%d records appended", records)
	}
	if batches >= records {
		t.Errorf("no batching: %d records in %d batches", records, batches)
	}
	t.Logf("%d records in %d batches over 3 replicas, %d checkpoints during the run", records, batches, len(logs[3].Checkpoints()))

	if n, err := logs[1].SizeContext(context.Background()); err != nil || n != workers*each {
		t.Fatalf("size %d %v", n, err)
	}
	if _, err := logs[2].Checkpoint(); err != nil {
		t.Fatal(err)
	}
	rep := pgVerify(t, logs[0], vkey)
	if !rep.OK || rep.To != workers*each || rep.Anchored != workers*each || rep.Checkpoints < 2 {
		t.Fatalf("verify: %+v", rep)
	}
	// Every record the replicas wrote reads back by id and seq.
	for _, id := range []int{0, 17, workers*each - 1} {
		r, err := logs[0].GetByID(context.Background(), fmt.Sprintf("d-%04d", id))
		if err != nil {
			t.Fatal(err)
		}
		if g, err := logs[1].Get(r.Seq); err != nil || g.ID != r.ID {
			t.Fatalf("Get(%d) = %+v %v", r.Seq, g, err)
		}
	}
}

func TestPostgresReopenAndRun(t *testing.T) {
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	l := db.open(Options{Signer: signer, CheckpointInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	pgAppendN(t, l, 0, 3)
	deadline := time.Now().Add(5 * time.Second)
	for cps := l.Checkpoints(); len(cps) == 0 || sizeOf(cps[len(cps)-1]) != 3; cps = l.Checkpoints() {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint from Run")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil || l.LastCheckpointError() != nil {
		t.Fatalf("Run: %v, last checkpoint: %v", err, l.LastCheckpointError())
	}
	pgAppendN(t, l, 3, 2)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), mkRec(0)); !errors.Is(err, trail.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := l.Get(0); !errors.Is(err, trail.ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}

	l = db.open(Options{Signer: signer})
	if l.Size() != 5 {
		t.Fatalf("reopened size %d", l.Size())
	}
	// Run's first tick may have signed the empty tree: 2 or 3 so far.
	cps := l.Checkpoints()
	if len(cps) < 2 || sizeOf(cps[len(cps)-1]) != 5 || sizeOf(cps[len(cps)-2]) != 3 {
		t.Fatalf("checkpoints after close: %d", len(cps))
	}
	pgAppendN(t, l, 5, 4) // the frontier cache starts cold
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Checkpoint(); err != nil || len(l.Checkpoints()) != len(cps)+1 {
		t.Fatalf("repeat checkpoint: %v, %d", err, len(l.Checkpoints()))
	}
	if rep := pgVerify(t, l, vkey); !rep.OK || rep.Anchored != 9 || rep.Checkpoints != len(cps)+1 {
		t.Fatalf("verify: %+v", rep)
	}
	unsigned := db.open(Options{})
	if _, err := unsigned.Checkpoint(); !errors.Is(err, trail.ErrNoSigner) {
		t.Fatalf("checkpoint without signer: %v", err)
	}
	if err := unsigned.Run(context.Background()); !errors.Is(err, trail.ErrNoSigner) {
		t.Fatalf("run without signer: %v", err)
	}
}

// A transaction that fails fails every Append of its batch, and writes
// nothing: no record, no stored hash, no new head.
func TestPostgresFailedBatchWritesNothing(t *testing.T) {
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	l := db.open(Options{Signer: signer})
	pgAppendN(t, l, 0, 5)
	// A rogue row where the next record goes: every insert collides.
	body, leaf := canonicalAt(50, 5)
	db.exec(`INSERT INTO {records} (seq, kind, id, time, body, leaf) VALUES (5, 'decision', 'rogue', $1, $2, $3)`, epoch, body, leaf)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = l.Append(context.Background(), mkRec(10+i), mkRec(20+i)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "postgres append") {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if n := db.count(`SELECT size FROM {head}`); n != 5 {
		t.Fatalf("head moved to %d", n)
	}
	// Stored hashes: the leaf and up columns of the records (layout 1).
	if n := db.count(`SELECT count(*) + coalesce(sum(length(up)), 0) / 32 FROM {records} WHERE id <> 'rogue'`); n != tlog.StoredHashCount(5) {
		t.Fatalf("%d stored hashes, want %d", n, tlog.StoredHashCount(5))
	}
	if n := db.count(`SELECT count(*) FROM {records}`); n != 6 {
		t.Fatalf("%d records, want 5 and the rogue", n)
	}
	db.exec(`DELETE FROM {records} WHERE id = 'rogue'`)
	pgAppendN(t, l, 5, 2)
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if rep := pgVerify(t, l, vkey); !rep.OK || rep.To != 7 {
		t.Fatalf("verify: %+v", rep)
	}
}

// pgProxy forwards TCP connections to PostgreSQL until stopped, so a test
// can take the database away from a log that is open.
type pgProxy struct {
	target string
	ln     net.Listener
	mu     sync.Mutex
	conns  []net.Conn
}

func startPGProxy(t *testing.T, target, addr string) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{target: target, ln: ln}
	t.Cleanup(p.stop)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *pgProxy) stop() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func TestPostgresUnreachable(t *testing.T) {
	db := newPGDB(t)
	signer, vkey := newKeys(t)
	u, err := url.Parse(db.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startPGProxy(t, u.Host, "127.0.0.1:0")
	addr := proxy.ln.Addr().String()
	u.Host = addr
	const timeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Open(ctx, u.String(), Options{Signer: signer, Schema: db.schema, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	pgAppendN(t, l, 0, 3)

	proxy.stop()
	start := time.Now()
	if _, err := l.Append(context.Background(), mkRec(3)); err == nil {
		t.Fatal("append without a database succeeded")
	} else {
		t.Logf("append without a database: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	}
	if d := time.Since(start); d > timeout+time.Second {
		t.Fatalf("append took %v, timeout %v", d, timeout)
	}
	if _, err := l.Checkpoint(); err == nil {
		t.Fatal("checkpoint without a database succeeded")
	}
	if n := db.count(`SELECT size FROM {head}`); n != 3 {
		t.Fatalf("head %d after failed append", n)
	}

	// A database that accepts connections and never answers: Append fails
	// after Timeout, not later.
	hole, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				close(held)
				return
			}
			held <- c
		}
	}()
	start = time.Now()
	if _, err := l.Append(context.Background(), mkRec(3)); err == nil {
		t.Fatal("append to a silent database succeeded")
	} else if d := time.Since(start); d < timeout/2 || d > timeout+time.Second {
		t.Fatalf("append to a silent database failed after %v (timeout %v): %v", d, timeout, err)
	} else {
		t.Logf("append to a silent database: %v (after %v)", err, d.Round(time.Millisecond))
	}
	hole.Close()
	for c := range held {
		c.Close()
	}

	// The database comes back: appends succeed again (the pool drops the
	// broken connections; an idle one may fail once more).
	startPGProxy(t, proxy.target, addr)
	deadline := time.Now().Add(10 * time.Second)
	for {
		seqs, err := l.Append(context.Background(), mkRec(3))
		if err == nil {
			if seqs[0] != 3 {
				t.Fatalf("seq %d after recovery, want 3", seqs[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("append after the database came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if rep := pgVerify(t, l, vkey); !rep.OK || rep.To != 4 {
		t.Fatalf("verify: %+v", rep)
	}
}

func TestPostgresOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	if _, err := Open(ctx, "postgres://pdp:pdp@"+addr+"/pdp?sslmode=disable&connect_timeout=2", Options{}); err == nil {
		t.Fatal("open without a database succeeded")
	}
}
