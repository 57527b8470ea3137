package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/authzen"
	"github.com/ciampdp/pdp/pdp/trail"
)

// TestPprofAddrIsLoopbackOnly: the profiles listener is configured on a
// loopback host:port or not at all.
func TestPprofAddrIsLoopbackOnly(t *testing.T) {
	for addr, valid := range map[string]bool{
		"": true, "127.0.0.1:6061": true, "localhost:0": true, "[::1]:6061": true,
		"0.0.0.0:6061": false, ":6061": false, "10.0.0.1:6061": false, "127.0.0.1": false, "example.com:80": false,
	} {
		c := DefaultConfig()
		c.PprofAddr = addr
		if err := c.Validate(); (err == nil) != valid {
			t.Errorf("pprof_addr %q: Validate = %v, want valid %v", addr, err, valid)
		}
	}
}

// TestCacheKeyIsTheRequestsJSON: the key (also the request's encoding in
// an answer's record) is what encoding/json writes for the request, as
// before it was written by hand.
func TestCacheKeyIsTheRequestsJSON(t *testing.T) {
	for _, req := range []pdp.Request{
		{},
		{Subject: pdp.Entity{Type: "user", ID: "alice"}, Action: pdp.Action{Name: "view_statements"},
			Resource: pdp.Entity{Type: "account", ID: "acc-alice"}, Context: map[string]any{"purpose": "x", "amount": json.Number("250.5")}},
		{Subject: pdp.Entity{Type: "user", ID: "<b>&\u2028\"", Properties: map[string]any{"z": []any{1.5, true, nil, "s"}, "a": map[string]any{"k": "v"}}}},
	} {
		want, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cacheKey(req)
		if err != nil || got != string(want) {
			t.Errorf("cacheKey = %s (%v), want %s", got, err, want)
		}
	}
}

// TestDecodedBodiesAreCheckedAsStrictly: a repeated body gives the
// decoder's request and key without decoding again; a body the decoder
// refuses is refused every time with its message, never remembered; the
// memory is bounded.
func TestDecodedBodiesAreCheckedAsStrictly(t *testing.T) {
	d := newDecodedBodies(3)
	good := []byte(`{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`)
	want, err := authzen.DecodeEvaluation(good)
	if err != nil {
		t.Fatal(err)
	}
	wantKey, _ := cacheKey(want)
	for i := range 3 {
		req, key, err := d.decode(good)
		if err != nil || key != wantKey || !reflect.DeepEqual(req, want) {
			t.Fatalf("decode %d: %+v %q %v", i, req, key, err)
		}
	}
	if len(d.m) != 1 {
		t.Fatalf("%d bodies remembered, want 1", len(d.m))
	}
	for _, bad := range []string{
		`{"subject":{"type":"user","id":"mallory","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"}}`,
		`{"subject":{"type":"user","id":"alice"},"resource":{"type":"account","id":"acc-alice"}}`,
		`{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"a","Purpose":"b"}}`,
		`{"subject":`,
	} {
		_, werr := authzen.DecodeEvaluation([]byte(bad))
		if werr == nil {
			t.Fatalf("the decoder takes %s", bad)
		}
		for range 2 {
			if _, _, err := d.decode([]byte(bad)); err == nil || err.Error() != werr.Error() {
				t.Fatalf("%s: %v, want %v", bad, err, werr)
			}
		}
	}
	if len(d.m) != 1 {
		t.Fatalf("%d bodies remembered after refusals, want 1", len(d.m))
	}
	for i := range 10 {
		body := fmt.Appendf(nil, `{"subject":{"type":"user","id":"u%d"},"action":{"name":"a"},"resource":{"type":"r","id":"1"}}`, i)
		if _, _, err := d.decode(body); err != nil {
			t.Fatal(err)
		}
		if len(d.m) > 3 {
			t.Fatalf("%d bodies remembered, bound 3", len(d.m))
		}
	}
	if off := newDecodedBodies(0); off.max != 0 {
		t.Fatal("without a cache, bodies are remembered")
	} else if _, _, err := off.decode(good); err != nil || len(off.m) != 0 {
		t.Fatalf("without a cache: %v, %d remembered", err, len(off.m))
	}
}

// TestAsyncSpoolWritesManyAnswersPerFsync: the async drainer gathers the
// answers of a spoolWindow into one write and fsync (it wrote whatever
// had queued, often one answer per fsync), and closing writes what it
// gathered at once.
func TestAsyncSpoolWritesManyAnswersPerFsync(t *testing.T) {
	dir := t.TempDir()
	sp, err := openSpool(dir, SpoolAsync, DefaultSpoolSegmentBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	start := time.Now()
	for i := range n {
		rec := trail.Record{Kind: KindAnswer, ID: fmt.Sprintf("d-%d", i), Time: time.Now().UTC(), Body: []byte(`{}`)}
		if err := sp.add(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			time.Sleep(time.Millisecond) // answers arrive over ~20 ms, as under load
		}
	}
	most := int(time.Since(start)/spoolWindow) + 2
	deadline := time.Now().Add(10 * time.Second)
	for sp.size() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := sp.cur.Load().Stats()
	if st.Records != n || st.Batches > uint64(most) {
		t.Errorf("%d answers in %d writes, want %d in at most %d (one per spoolWindow)", st.Records, st.Batches, n, most)
	}
	// One more, then close at once: written although its window is open.
	if err := sp.add(context.Background(), trail.Record{Kind: KindAnswer, ID: "last", Time: time.Now().UTC(), Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	sp, err = openSpool(dir, SpoolAsync, DefaultSpoolSegmentBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	if got := sp.size(); got != n+1 {
		t.Errorf("reopened: %d answers, want %d", got, n+1)
	}
}

// ingestCall is one POST /v1/trail/ingest a fake central PDP received.
type ingestCall struct {
	at      time.Time
	records int
}

// fakeIngest answers ingest calls as the central PDP does (acked: the
// last seq) and records them; the change feed is not served.
func fakeIngest(t *testing.T) (*httptest.Server, func() []ingestCall) {
	var (
		mu    sync.Mutex
		calls []ingestCall
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/trail/ingest" {
			http.NotFound(w, r)
			return
		}
		var body struct {
			Records []struct {
				Seq uint64 `json:"seq"`
			} `json:"records"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Records) == 0 {
			http.Error(w, "bad batch", http.StatusBadRequest)
			return
		}
		mu.Lock()
		calls = append(calls, ingestCall{at: time.Now(), records: len(body.Records)})
		mu.Unlock()
		fmt.Fprintf(w, `{"acked":%d}`, body.Records[len(body.Records)-1].Seq)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []ingestCall {
		mu.Lock()
		defer mu.Unlock()
		return append([]ingestCall(nil), calls...)
	}
}

// TestShippingWaitsForAFullBatchOrTheInterval: a partial batch goes at
// most once per ship_interval (it went after every round trip: a few
// answers per ingest call, shipping position and central fsync), a full
// batch at once, and everything arrives, in order, once.
func TestShippingWaitsForAFullBatchOrTheInterval(t *testing.T) {
	srv, calls := fakeIngest(t)
	cfg := DefaultConfig()
	cfg.CentralURL, cfg.SpoolDir, cfg.ID = srv.URL, t.TempDir(), "sc-ship"
	cfg.ShipInterval = 300 * time.Millisecond
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	shipped := make(chan struct{})
	go func() { defer close(shipped); s.ship(ctx) }()
	defer func() { cancel(); <-shipped }()

	add := func(n int) {
		for range n {
			id := fmt.Sprintf("d-%d", s.spool.spooled())
			if err := s.spool.add(ctx, trail.Record{Kind: KindAnswer, ID: id, Time: time.Now().UTC(), Body: []byte(`{"n":1}`)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitShipped := func(n uint64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for s.shippedRecords.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("shipped %d of %d; calls %+v", s.shippedRecords.Load(), n, calls())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// A trickle (an answer every ~2 ms for ~0.9 s): a call per interval,
	// not one per round trip.
	start := time.Now()
	for range 450 {
		add(1)
		time.Sleep(2 * time.Millisecond)
	}
	waitShipped(450)
	c := calls()
	if max := int(time.Since(start)/cfg.ShipInterval) + 2; len(c) > max {
		t.Fatalf("450 answers over %v in %d calls, want at most %d: %+v", time.Since(start).Round(time.Millisecond), len(c), max, c)
	}
	for i := 1; i < len(c); i++ {
		if gap := c[i].at.Sub(c[i-1].at); gap < 250*time.Millisecond {
			t.Fatalf("partial batches %v apart, want ship_interval: %+v", gap, c)
		}
	}
	before := len(c)
	add(2*shipBatchSize + 10)
	waitShipped(uint64(2*shipBatchSize + 460))
	c = calls()[before:]
	total, fullPairs := 0, 0
	for i, call := range c {
		total += call.records
		if i > 0 && call.records == shipBatchSize && c[i-1].records == shipBatchSize && call.at.Sub(c[i-1].at) < 200*time.Millisecond {
			fullPairs++
		}
	}
	if total != 2*shipBatchSize+10 || fullPairs == 0 {
		t.Fatalf("a backlog of two full batches: calls %+v, want full batches back to back", c)
	}
	if got := s.spool.shipped(); got != uint64(2*shipBatchSize+460) {
		t.Errorf("shipping position %d, want %d", got, 2*shipBatchSize+460)
	}
}
