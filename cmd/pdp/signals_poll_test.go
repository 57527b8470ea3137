package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/signals"
)

// TestSignalsPollDelivery: the PDP polls a transmitter (RFC 8936) for its
// SETs, stores them, acknowledges them by jti, and decisions follow.
func TestSignalsPollDelivery(t *testing.T) {
	key := loadDemoTransmitterKey(t)
	set, err := signals.Sign(key, map[string]any{"iss": "https://risk.northbank.example/", "aud": "https://pdp.northbank.example/",
		"iat": time.Now().Unix(), "jti": "polled-1",
		"sub_id": map[string]any{"format": "iss_sub", "iss": "https://idp.northbank.example/", "sub": "bob"},
		"events": map[string]any{signals.RISCPrefix + "credential-compromise": map[string]any{"credential_type": "password"}}})
	if err != nil {
		t.Fatal(err)
	}
	// The transmitter's poll endpoint, a fake at the edge: one SET until
	// it is acknowledged.
	var (
		mu    sync.Mutex
		queue = map[string]string{"polled-1": set}
		acked []string
	)
	tx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer poll-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var req struct {
			Ack []string `json:"ack"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		defer mu.Unlock()
		for _, j := range req.Ack {
			acked = append(acked, j)
			delete(queue, j)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"sets": queue, "moreAvailable": false})
	}))
	defer tx.Close()

	data, err := os.ReadFile(filepath.Join(northbank, "pdp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "poll-token")
	writeFile(t, tokenFile, "poll-secret\n")
	cfg := replaceOnce(t, string(data), "      delivery: push\n", "      delivery: poll\n      poll_url: "+tx.URL+"/poll\n      poll_interval: 100ms\n      poll_token_file: "+tokenFile+"\n")
	path := filepath.Join(dir, "pdp.yaml")
	writeFile(t, path, cfg)
	t.Setenv("PDP_SIGNALS_PATH", filepath.Join(dir, "signals.jsonl"))
	s := startNorthbank(t, "--config", path)

	pay := forUser("alice", `,"amount":250,"currency":"EUR"`)
	eventually(t, "the polled signal denies bob's payment", func() bool {
		d := s.sigAsk(t, "bob", "make_payment", "acc-alice", pay)
		return !d.Decision && slices.Equal(d.Context.Reasons, []string{"account_compromised"})
	})
	eventually(t, "the transmitter got the acknowledgement", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Equal(acked, []string{"polled-1"}) && len(queue) == 0
	})
}
