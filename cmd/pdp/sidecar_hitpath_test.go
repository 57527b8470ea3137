package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ciampdp/pdp/pdp/trail"
)

// TestSidecarHitPath: the hit path as changed for issue 15 (a repeated
// body is not decoded again, answers are spooled per window and shipped
// per ship_interval, the central PDP reads a sidecar's batch without
// reflection) still refuses every bad body every time, and every hit is
// in the central trail exactly once; the sidecar serves its runtime
// profiles on pprof_addr.
func TestSidecarHitPath(t *testing.T) {
	dir := t.TempDir()
	central := northbankWithTrail(t, dir, "127.0.0.1:0")
	pprofAddr := freeAddr(t)
	sc := startSidecar(t, central.URL, "demo-key-mobile-banking", filepath.Join(dir, "spool"), map[string]string{
		"PDP_SIDECAR_PPROF_ADDR": pprofAddr, "PDP_SIDECAR_SHIP_INTERVAL": "300ms",
	})

	res, err := http.Get("http://" + pprofAddr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("the sidecar's profiles: %d", res.StatusCode)
	}
	if code, _, _ := postJSON("http://"+pprofAddr, "/access/v1/evaluation", "demo-key-mobile-banking", bobPays); code != http.StatusNotFound {
		t.Errorf("the profiles listener answers the AuthZEN API: %d", code)
	}

	// Bad bodies are refused each time they come, with the decoder's word.
	for _, bad := range []struct{ body, says string }{
		{`{"subject":{"type":"user","id":"mallory","ID":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"}}`, "duplicate member name"},
		{`{"subject":{"type":"user","id":"alice"},"resource":{"type":"account","id":"acc-alice"}}`, "action"},
		{`{"subject":`, ""},
	} {
		for i := range 3 {
			code, data, err := postJSON(sc, "/access/v1/evaluation", "demo-key-mobile-banking", bad.body)
			if err != nil || code != http.StatusBadRequest || !strings.Contains(string(data), bad.says) {
				t.Fatalf("%s, time %d: %d %s %v", bad.body, i+1, code, data, err)
			}
		}
	}

	const views = `{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`
	var (
		mu   sync.Mutex
		ids  []string
		hits int
		wg   sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for range 60 {
				code, data, err := postJSON(sc, "/access/v1/evaluation", "demo-key-mobile-banking", views)
				var a sidecarAnswer
				if err != nil || code != http.StatusOK || json.Unmarshal(data, &a) != nil || !a.Decision {
					t.Errorf("alice views her statements: %d %s %v", code, data, err)
					return
				}
				mu.Lock()
				ids = append(ids, a.Context.DecisionID)
				if a.Context.CachedFrom != "" {
					hits++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if hits < len(ids)/2 {
		t.Fatalf("%d cache hits of %d answers", hits, len(ids))
	}
	eventually(t, "the sidecar shipped its spool", func() bool {
		st := sidecarStatus(t, sc)
		return st.Shipped >= st.Spooled
	})
	central.stop(t)
	inTrail := trailAnswers(t, filepath.Join(dir, "trail"))
	for _, id := range ids {
		if inTrail[id] != 1 {
			t.Errorf("answer %s is %d times in the central trail, want once", id, inTrail[id])
		}
	}
	t.Logf("%d answers, %d from the cache, each once in the central trail", len(ids), hits)

	// What a hit records: the sidecar's record (the request, the answer,
	// cached_from naming the central decision that holds the Cedar input
	// and facts), spooled and stored at the central PDP with the same bytes.
	// A copy: the running sidecar holds its spool's lock. The spool's
	// first segment (64 MiB: the only one here) starts at spool seq 0.
	spoolCopy := filepath.Join(t.TempDir(), "spool")
	if err := os.CopyFS(spoolCopy, os.DirFS(filepath.Join(dir, "spool", "spool.00000000000000000000"))); err != nil {
		t.Fatal(err)
	}
	spool, err := trail.OpenFile(spoolCopy, trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	spooled := map[string][]byte{}
	if err := spool.Scan(0, spool.Size(), func(r trail.Record) error { spooled[r.ID] = r.Body; return nil }); err != nil {
		t.Fatal(err)
	}
	central2, err := trail.OpenFile(filepath.Join(dir, "trail"), trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer central2.Close()
	var stored, bodyBytes int
	err = central2.Scan(0, central2.Size(), func(r trail.Record) error {
		if r.Kind != trail.KindSidecar {
			return nil
		}
		var b trail.SidecarBody
		if err := json.Unmarshal(r.Body, &b); err != nil {
			return err
		}
		var rec struct {
			DecisionID string `json:"decision_id"`
		}
		if err := json.Unmarshal(b.Record, &rec); err != nil {
			return err
		}
		if !bytes.Equal(b.Record, spooled[rec.DecisionID]) {
			t.Errorf("%s: stored\n%s\nspooled\n%s", rec.DecisionID, b.Record, spooled[rec.DecisionID])
		}
		stored++
		bodyBytes += len(b.Record)
		return nil
	})
	if err != nil || stored != hits {
		t.Fatalf("%d sidecar records in the central trail (%v), want %d (the hits)", stored, err, hits)
	}
	t.Logf("a sidecar answer's record: %d bytes on average, the same bytes in the spool and the central trail", bodyBytes/stored)
}

// TestSidecarPprofAddrOnLoopbackOnly: a profiles address off loopback is a
// configuration error; the sidecar does not start.
func TestSidecarPprofAddrOnLoopbackOnly(t *testing.T) {
	t.Setenv("PDP_SIDECAR_API_KEY", "demo-key-mobile-banking")
	t.Setenv("PDP_SIDECAR_SPOOL_DIR", t.TempDir())
	t.Setenv("PDP_SIDECAR_PPROF_ADDR", "0.0.0.0:6061")
	code, _, errOut := pdpRun("sidecar", "--listen", "127.0.0.1:0", "--central-url", "http://127.0.0.1:1")
	if code == exitOK || !strings.Contains(errOut, "pprof_addr") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}
