package sidecar

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestStepUpReportSentOnce: a step-up report the central PDP may have
// received (it timed out after sending) is not sent again, to the same
// replica or the next one, or it would be counted twice; other
// evaluations are still retried on the next replica.
func TestStepUpReportSentOnce(t *testing.T) {
	var stalled atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/changes", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("epoch") == "epoch-a" {
			select {
			case <-r.Context().Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		_, _ = w.Write([]byte(`{"seq":1,"epoch":"epoch-a","lease_ms":2000}`))
	})
	mux.HandleFunc("POST /access/v1/evaluation", func(_ http.ResponseWriter, r *http.Request) {
		stalled.Add(1) // received, never answered in time
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	})
	a := httptest.NewServer(mux)
	t.Cleanup(a.Close)
	b := newFakeCentral(t, "epoch-b")

	cfg := DefaultConfig()
	cfg.CentralURL = a.URL + "," + b.URL
	cfg.SpoolDir = t.TempDir()
	cfg.ID = "sc-once"
	cfg.Timeout = 300 * time.Millisecond
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	for deadline := time.Now().Add(10 * time.Second); s.Status().Mode != "connected"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never connected: %+v", s.Status())
		}
	}
	ask := func(body string) int {
		t.Helper()
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/access/v1/evaluation", strings.NewReader(body)))
		return w.Code
	}
	ask(`{"subject":{"type":"user","id":"alice"},"action":{"name":"complete_step_up"},"resource":{"type":"user","id":"alice"},"context":{"step_up":{"outcome":"failed"}}}`)
	if n, m := stalled.Load(), b.evaluated.Load(); n != 1 || m != 0 {
		t.Fatalf("a report reached replica a %d times and replica b %d times, want once and never", n, m)
	}
	ask(`{"subject":{"type":"user","id":"alice"},"action":{"name":"view"},"resource":{"type":"account","id":"acc-1"}}`)
	if m := b.evaluated.Load(); m != 1 {
		t.Fatalf("an evaluation that timed out on replica a reached replica b %d times, want once (retried)", m)
	}
}
