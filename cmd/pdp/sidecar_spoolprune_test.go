package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ciampdp/pdp/sidecar"
)

// spoolSegmentBytes is the spool_segment_bytes of the pruning test: the
// smallest allowed, so that a few thousand answers make many segments.
const spoolSegmentBytes = 64 << 10

// dirBytes is the size of every file under dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // a segment deleted meanwhile
		}
		if info, err := d.Info(); err == nil {
			n += info.Size()
		}
		return nil
	})
	return n
}

// TestSidecarSpoolPrunedAfterShipping: under load, in both spool modes and
// across a restart, the sidecar's spool deletes what it shipped: once
// shipping has caught up its directory holds one segment (a small
// spool_segment_bytes here), /metrics says so, and the central trail holds
// every answer exactly once and verifies.
func TestSidecarSpoolPrunedAfterShipping(t *testing.T) {
	dir := t.TempDir()
	central := northbankWithTrail(t, dir, "127.0.0.1:0")
	views := `{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`
	var answers []string
	for _, mode := range []string{"sync", "async"} {
		spool := filepath.Join(dir, "spool-"+mode)
		env := map[string]string{"PDP_SIDECAR_SPOOL_MODE": mode, "PDP_SIDECAR_SPOOL_SEGMENT_BYTES": fmt.Sprint(spoolSegmentBytes)}
		for run := 1; run <= 2; run++ { // the second run goes on with the first one's spool
			t.Run(fmt.Sprintf("%s/run%d", mode, run), func(t *testing.T) {
				sc := startSidecar(t, central.URL, "demo-key-mobile-banking", spool, env)
				start := sidecarStatus(t, sc)
				var (
					mu   sync.Mutex
					ids  []string
					peak atomic.Int64
					wg   sync.WaitGroup
				)
				stop := make(chan struct{})
				sampled := make(chan struct{})
				go func() {
					defer close(sampled)
					for {
						if n := dirBytes(spool); n > peak.Load() {
							peak.Store(n)
						}
						select {
						case <-stop:
							return
						case <-time.After(20 * time.Millisecond):
						}
					}
				}()
				for range 8 {
					wg.Go(func() {
						for range 300 {
							code, data, err := postJSON(sc, "/access/v1/evaluation", "demo-key-mobile-banking", views)
							var a sidecarAnswer
							if err != nil || code != http.StatusOK || json.Unmarshal(data, &a) != nil || !a.Decision {
								t.Errorf("evaluation through the sidecar: %d %s %v", code, data, err)
								return
							}
							mu.Lock()
							ids = append(ids, a.Context.DecisionID)
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				eventually(t, "the sidecar shipped its spool", func() bool {
					st := sidecarStatus(t, sc)
					return st.Shipped >= st.Spooled && st.Spooled > start.Spooled
				})
				metrics := &server{URL: sc}
				eventually(t, "the shipped segments are deleted", func() bool {
					return metrics.metric(t, "pdp_sidecar_spool_segments") == 1
				})
				close(stop)
				<-sampled
				st := sidecarStatus(t, sc)
				answered := st.Spooled - start.Spooled
				onDisk, reported := dirBytes(spool), metrics.metric(t, "pdp_sidecar_spool_bytes")
				t.Logf("%s run %d: %d answers spooled (%d hits), spool seqs %d..%d; spool directory at most %d bytes under load, %d after shipping (/metrics: %.0f in segments)",
					mode, run, answered, st.Hits-start.Hits, start.Spooled, st.Spooled, peak.Load(), onDisk, reported)
				if answered < 2000 {
					t.Fatalf("%d answers spooled, want cache hits", answered)
				}
				// One segment (records up to spool_segment_bytes and one
				// write past it, its hashes, preallocated space of at most
				// an eighth of a segment) and the position file. The peak
				// under load is logged, not bounded: it is what shipping
				// had not caught up with, which the machine's speed sets.
				if bound := int64(3 * spoolSegmentBytes); onDisk > bound || reported > float64(onDisk) {
					t.Errorf("after shipping the spool takes %d bytes (/metrics %.0f), want at most %d", onDisk, reported, bound)
				}
				if unshipped := metrics.metric(t, "pdp_sidecar_spool_unshipped_records"); unshipped != 0 {
					t.Errorf("pdp_sidecar_spool_unshipped_records %v after shipping", unshipped)
				}
				mu.Lock()
				answers = append(answers, ids...)
				mu.Unlock()
			})
		}
	}
	central.stop(t)
	if code, out, errOut := pdpRun("log", "verify", "--dir", filepath.Join(dir, "trail")); code != exitOK {
		t.Fatalf("log verify: %d\n%s%s", code, out, errOut)
	}
	ids := trailAnswers(t, filepath.Join(dir, "trail"))
	missing := 0
	for _, id := range answers {
		if ids[id] != 1 {
			missing++
			if missing <= 10 {
				t.Errorf("answer %s is %d times in the central trail, want once", id, ids[id])
			}
		}
	}
	if missing > 0 || len(answers) < 4*2000 {
		t.Fatalf("%d of %d answers not exactly once in the central trail", missing, len(answers))
	}
}

// TestSidecarSpoolSegmentBytesConfig: spool_segment_bytes is read from the
// file and PDP_SIDECAR_SPOOL_SEGMENT_BYTES; a size out of range stops the
// sidecar with a message naming the key.
func TestSidecarSpoolSegmentBytesConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sidecar.yaml")
	writeFile(t, file, "api_key: k\nspool_segment_bytes: 1048576\n")
	load := func() (sidecar.Config, error) {
		fs := pflag.NewFlagSet("sidecar", pflag.ContinueOnError)
		sidecarCommand().flags(fs)
		if err := fs.Set("config", file); err != nil {
			t.Fatal(err)
		}
		return loadSidecarConfig(fs)
	}
	if cfg, err := load(); err != nil || cfg.SpoolSegmentBytes != 1<<20 {
		t.Fatalf("from the file: %d, %v", cfg.SpoolSegmentBytes, err)
	}
	for env, ok := range map[string]bool{"65536": true, "1000": false, "0": false, "-5": false, "8589934592": false, "64MiB": false} {
		t.Setenv("PDP_SIDECAR_SPOOL_SEGMENT_BYTES", env)
		cfg, err := load()
		if ok && (err != nil || fmt.Sprint(cfg.SpoolSegmentBytes) != env) {
			t.Errorf("PDP_SIDECAR_SPOOL_SEGMENT_BYTES=%s: %d, %v", env, cfg.SpoolSegmentBytes, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "spool_segment_bytes")) {
			t.Errorf("PDP_SIDECAR_SPOOL_SEGMENT_BYTES=%s: %v, want an error naming spool_segment_bytes", env, err)
		}
	}
}
