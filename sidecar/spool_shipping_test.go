package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ingestLedger is a central PDP's trail ingest as far as a sidecar sees
// it: records stored once by spool seq (a seq at or below the highest
// stored is skipped), acked the highest; down answers 503.
type ingestLedger struct {
	mu    sync.Mutex
	ids   map[uint64]string
	acked uint64
	down  bool
	bad   []string
}

func newIngestLedger(t *testing.T) (*ingestLedger, *httptest.Server) {
	g := &ingestLedger{ids: map[uint64]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.down || r.URL.Path != "/v1/trail/ingest" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var body struct {
			Records []ingestRecord `json:"records"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rec := range body.Records {
			if rec.Seq <= g.acked {
				if id := g.ids[rec.Seq]; id != "" && id != rec.ID {
					g.bad = append(g.bad, fmt.Sprintf("seq %d sent as %s, stored as %s", rec.Seq, rec.ID, id))
				}
				continue
			}
			g.ids[rec.Seq], g.acked = rec.ID, rec.Seq
		}
		_, _ = fmt.Fprintf(w, `{"acked":%d}`, g.acked)
	}))
	t.Cleanup(srv.Close)
	return g, srv
}

func (g *ingestLedger) setDown(down bool) {
	g.mu.Lock()
	g.down = down
	g.mu.Unlock()
}

// check: the ledger holds spool seqs from..to-1 (ingest seqs from+1..to),
// seq s as answer d-<s>, nothing else, and no seq was sent as another answer.
func (g *ingestLedger) check(t *testing.T, from, to uint64) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, b := range g.bad {
		t.Error(b)
	}
	if len(g.ids) != int(to-from) {
		t.Errorf("the central trail holds %d records, want %d (spool seqs %d..%d)", len(g.ids), to-from, from, to-1)
	}
	for s := from; s < to; s++ {
		if id := g.ids[s+1]; id != fmt.Sprintf("d-%d", s) {
			t.Errorf("ingest seq %d holds %q, want d-%d", s+1, id, s)
		}
	}
}

// shippingSidecar is a sidecar on spool dir shipping to central, with
// segments of segBytes (below the configuration's minimum too, to make
// many quickly); its shipper runs until the test ends.
func shippingSidecar(t *testing.T, central, dir, mode string, segBytes int64) *Sidecar {
	t.Helper()
	cfg := DefaultConfig()
	cfg.CentralURL, cfg.SpoolDir, cfg.SpoolMode, cfg.ID = central, dir, mode, "sc-prune"
	cfg.SpoolSegmentBytes, cfg.ShipInterval = max(segBytes, MinSpoolSegmentBytes), 20*time.Millisecond
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.spool.segBytes = segBytes // before any append
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.ship(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// openLogs counts the spool's segments whose log is open.
func openLogs(sp *spool) int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	n := 0
	for _, seg := range sp.segs {
		if seg.log != nil {
			n++
		}
	}
	return n
}

func waitShipped(t *testing.T, s *Sidecar, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.spool.shipped() < n || s.spool.size() < n {
		if time.Now().After(deadline) {
			t.Fatalf("shipped %d of %d", s.spool.shipped(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSpoolUpgradesTheOneLogLayout: a spool written before segments (one
// FileLog in spool_dir/spool, part of it shipped) is the segment with
// base 0: the upgraded sidecar ships the rest with the seqs it had, goes
// on in a new segment, and deletes the old log once it is shipped.
func TestSpoolUpgradesTheOneLogLayout(t *testing.T) {
	for _, mode := range []string{SpoolSync, SpoolAsync} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			writeLegacySpool(t, dir, 400) // ~100 KB: more than a segment
			if err := os.WriteFile(filepath.Join(dir, "shipped"), []byte("10\n"), 0o640); err != nil {
				t.Fatal(err)
			}
			ledger, central := newIngestLedger(t)
			ledger.acked = 10 // what the old sidecar shipped
			for s := range uint64(10) {
				ledger.ids[s+1] = fmt.Sprintf("d-%d", s)
			}
			ledger.setDown(true)
			s := shippingSidecar(t, central.URL, dir, mode, MinSpoolSegmentBytes)
			if got := segmentBases(t, dir); len(got) != 2 || got[0] != 0 || got[1] != 400 {
				t.Fatalf("segments after the upgrade %v, want [0 400]: the old log sealed at open", got)
			}
			addAnswers(t, s.spool, 400, 450)
			checkSpool(t, s.spool, 0)
			if _, err := os.Stat(filepath.Join(dir, legacySpool)); err != nil {
				t.Fatalf("the old log went before it was shipped: %v", err)
			}
			ledger.setDown(false)
			waitShipped(t, s, 450)
			ledger.check(t, 0, 450)
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				got := segmentBases(t, dir)
				_, err := os.Stat(filepath.Join(dir, legacySpool))
				if errors.Is(err, os.ErrNotExist) && len(got) == 1 && got[0] == 400 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the old log shipped: segments %v, want [400] (old log: %v)", got, err)
				}
			}
		})
	}
}

// TestShippingPrunesAndResumes: while the central PDP is down nothing is
// deleted; once it is back every answer is shipped once, with its seq,
// the shipped segments go, and a restart goes on from the position.
func TestShippingPrunesAndResumes(t *testing.T) {
	for _, mode := range []string{SpoolSync, SpoolAsync} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			ledger, central := newIngestLedger(t)
			ledger.setDown(true)
			s := shippingSidecar(t, central.URL, dir, mode, MinSpoolSegmentBytes)
			addAnswers(t, s.spool, 0, 1200) // ~300 KB: about 5 segments
			time.Sleep(100 * time.Millisecond)
			down := segmentBases(t, dir)
			if len(down) < 4 || down[0] != 0 {
				t.Fatalf("segments while the central PDP is down %v", down)
			}
			// Sealed segments are closed (their preallocated space cut)
			// but the one shipping is stuck in: by the shipper's next try,
			// which its backoff (up to 5 s, jittered) may put seconds away.
			for deadline := time.Now().Add(20 * time.Second); openLogs(s.spool) > 2; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d segment logs open while shipping is stuck, want the writer's and the first", openLogs(s.spool))
				}
			}
			ledger.setDown(false)
			waitShipped(t, s, 1200)
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				got := segmentBases(t, dir)
				if len(got) == 1 && got[0] == down[len(down)-1] {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("segments after shipping %v, want only the last, %d", got, down[len(down)-1])
				}
			}
			addAnswers(t, s.spool, 1200, 1300)
			waitShipped(t, s, 1300)
			ledger.check(t, 0, 1300)
		})
	}
}

// TestShippingSkipsASegmentsLostRecords: a sealed segment holding fewer
// records than its span (a disk that lost fsynced records) is shipped as
// it is, and the seqs it lacks are skipped, never reused.
func TestShippingSkipsASegmentsLostRecords(t *testing.T) {
	dir := t.TempDir()
	writeLegacySpool(t, dir, 30) // its span runs to 40: 30..39 are lost
	if err := os.Mkdir(filepath.Join(dir, segmentName(40)), 0o750); err != nil {
		t.Fatal(err)
	}
	ledger, central := newIngestLedger(t)
	s := shippingSidecar(t, central.URL, dir, SpoolSync, MinSpoolSegmentBytes)
	for i := uint64(40); i < 50; i++ {
		if err := s.spool.add(context.Background(), answerRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitShipped(t, s, 50)
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	for seq := uint64(0); seq < 50; seq++ {
		want := fmt.Sprintf("d-%d", seq)
		if seq >= 30 && seq < 40 {
			want = ""
		}
		if got := ledger.ids[seq+1]; got != want {
			t.Errorf("ingest seq %d holds %q, want %q", seq+1, got, want)
		}
	}
	if len(ledger.bad) > 0 || len(ledger.ids) != 40 {
		t.Errorf("the central trail holds %d records (%v)", len(ledger.ids), ledger.bad)
	}
}

// TestSpoolSegmentBytesValidated: spool_segment_bytes is a size between
// 64 KiB and 4 GiB.
func TestSpoolSegmentBytesValidated(t *testing.T) {
	for _, c := range []struct {
		bytes int64
		ok    bool
	}{
		{DefaultSpoolSegmentBytes, true}, {MinSpoolSegmentBytes, true}, {MaxSpoolSegmentBytes, true},
		{0, false}, {-1, false}, {MinSpoolSegmentBytes - 1, false}, {MaxSpoolSegmentBytes + 1, false},
	} {
		cfg := DefaultConfig()
		cfg.SpoolSegmentBytes = c.bytes
		err := cfg.Validate()
		if (err == nil) != c.ok || err != nil && (!errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "spool_segment_bytes")) {
			t.Errorf("spool_segment_bytes %d: %v, want ok %v", c.bytes, err, c.ok)
		}
	}
}

// TestSidecarMetricsShowTheSpool: /metrics says the spool's bytes on disk
// and segments.
func TestSidecarMetricsShowTheSpool(t *testing.T) {
	ledger, central := newIngestLedger(t)
	ledger.setDown(true)
	dir := t.TempDir()
	s := shippingSidecar(t, central.URL, dir, SpoolSync, MinSpoolSegmentBytes)
	addAnswers(t, s.spool, 0, 600)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	segs := len(segmentBases(t, dir))
	for _, want := range []string{
		fmt.Sprintf("pdp_sidecar_spool_segments %d\n", segs),
		fmt.Sprintf("pdp_sidecar_spool_bytes %g\n", float64(s.spool.diskUsage())),
		"pdp_sidecar_spool_unshipped_records 600\n",
	} {
		if res.StatusCode != http.StatusOK || !strings.Contains(string(data), want) {
			t.Errorf("/metrics: %d, no %q in\n%s", res.StatusCode, want, data)
		}
	}
	if segs < 2 {
		t.Errorf("%d segments", segs)
	}
}
