package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestCentralsList(t *testing.T) {
	for _, tc := range []struct {
		central string
		want    []string
		valid   bool
	}{
		{"http://pdp:8080", []string{"http://pdp:8080"}, true},
		{"http://a:8080/, http://b:8080,https://c", []string{"http://a:8080", "http://b:8080", "https://c"}, true},
		{"http://a:8080,pdp:8080", nil, false},
		{"http://a:8080/?x=1", nil, false},
		{"http://a:8080/#frag", nil, false},
		{" , ", nil, false},
		{"", nil, false},
	} {
		c := DefaultConfig()
		c.CentralURL = tc.central
		err := c.Validate()
		if (err == nil) != tc.valid || err != nil && !errors.Is(err, ErrConfig) {
			t.Errorf("%q: Validate = %v, want valid %v", tc.central, err, tc.valid)
		}
		if tc.valid && !slices.Equal(c.Centrals(), tc.want) {
			t.Errorf("%q: Centrals = %q, want %q", tc.central, c.Centrals(), tc.want)
		}
	}
}

// fakeCentral is the edge the sidecar talks to: a change feed of its own
// epoch and an evaluation endpoint that allows, counting its answers.
type fakeCentral struct {
	*httptest.Server
	epoch     string
	evaluated atomic.Int64
}

func newFakeCentral(t *testing.T, epoch string) *fakeCentral {
	t.Helper()
	f := &fakeCentral{epoch: epoch}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/changes", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("epoch") == f.epoch { // hold like the PDP does
			select {
			case <-r.Context().Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		_ = json.NewEncoder(w).Encode(changeAnswer{Seq: 1, Epoch: f.epoch, LeaseMS: 2000})
	})
	mux.HandleFunc("POST /access/v1/evaluation", func(w http.ResponseWriter, _ *http.Request) {
		f.evaluated.Add(1)
		_, _ = w.Write([]byte(`{"decision":true,"context":{"decision_id":"` + uuid.Must(uuid.NewV7()).String() + `"}}`))
	})
	mux.HandleFunc("POST /v1/trail/ingest", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"acked":0}`))
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	_ = ln.Close()
	return u
}

// TestSidecarMovesToTheNextReplica: with central_url a list, the sidecar
// skips a replica that does not answer, caches only the answers of the
// replica whose feed it follows, and when that one dies moves on with an
// empty cache (the new replica's epoch).
func TestSidecarMovesToTheNextReplica(t *testing.T) {
	a, b := newFakeCentral(t, "epoch-a"), newFakeCentral(t, "epoch-b")
	cfg := DefaultConfig()
	cfg.CentralURL = strings.Join([]string{deadURL(t), a.URL, b.URL}, ",")
	cfg.SpoolDir = t.TempDir()
	cfg.ID = "sc-1"
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %+v", what, s.Status())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("follows replica a", func() bool { st := s.Status(); return st.Central == a.URL && st.Mode == "connected" })

	ask := func() bool {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/access/v1/evaluation",
			strings.NewReader(`{"subject":{"type":"user","id":"bob"},"action":{"name":"view"},"resource":{"type":"account","id":"acc-1"}}`))
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		var ans struct {
			Decision bool `json:"decision"`
		}
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &ans) != nil {
			t.Fatalf("evaluation: %d %s", w.Code, w.Body)
		}
		return ans.Decision
	}
	ask()
	ask()
	if n := a.evaluated.Load(); n != 1 {
		t.Errorf("replica a answered %d evaluations, want 1 (then the cache)", n)
	}
	a.CloseClientConnections()
	a.Close()
	waitFor("moves to replica b", func() bool {
		st := s.Status()
		return st.Central == b.URL && st.Epoch == "epoch-b" && st.Mode == "connected"
	})
	ask()
	if n := b.evaluated.Load(); n != 1 {
		t.Errorf("after the move replica b answered %d evaluations, want 1: the cache of replica a was served", n)
	}
	if st := s.Status(); st.Failovers < 2 {
		t.Errorf("failovers %d, want at least 2 (the dead URL, then a)", st.Failovers)
	}
}

// FuzzCentrals: whatever central_url holds, Validate does not panic, and
// a valid one lists only http(s) URLs with a host, without commas,
// spaces or trailing slashes.
func FuzzCentrals(f *testing.F) {
	for _, s := range []string{"http://pdp:8080", "http://a/, https://b:1", ",", "http://a,,http://b", " http://x ", "ftp://x", "http://"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := DefaultConfig()
		c.CentralURL = s
		if c.Validate() != nil {
			return
		}
		list := c.Centrals()
		if len(list) == 0 {
			t.Fatalf("%q: valid without a URL", s)
		}
		for _, u := range list {
			if strings.ContainsAny(u, ", ?#") || strings.HasSuffix(u, "/") {
				t.Fatalf("%q: entry %q", s, u)
			}
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				t.Fatalf("%q: entry %q is not http(s)", s, u)
			}
		}
	})
}
