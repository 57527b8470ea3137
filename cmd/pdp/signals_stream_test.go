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

// TestSignalsStreamManagement: a transmitter that offers stream
// management (its /.well-known/ssf-configuration) and poll delivery. The
// PDP reads its metadata, creates its stream there with its bearer token,
// asks for a verification event, and polls the endpoint the stream names:
// the verification event is stored (acknowledged) and changes no decision;
// a credential-compromise that follows denies bob's payment.
func TestSignalsStreamManagement(t *testing.T) {
	key := loadDemoTransmitterKey(t)
	sign := func(jti string, sub map[string]any, event string, payload map[string]any) string {
		set, err := signals.Sign(key, map[string]any{"iss": "https://risk.northbank.example/", "aud": "https://pdp.northbank.example/",
			"iat": time.Now().Unix(), "jti": jti, "sub_id": sub, "events": map[string]any{event: payload}})
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	// The transmitter, a fake at the edge.
	var (
		mu       sync.Mutex
		queue    = map[string]string{}
		acked    []string
		created  []map[string]any
		verified []map[string]string
	)
	mux := http.NewServeMux()
	var tx *httptest.Server
	mux.HandleFunc("GET /.well-known/ssf-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"spec_version": "1_0", "issuer": "https://risk.northbank.example/",
			"delivery_methods_supported": []string{"urn:ietf:rfc:8935", "urn:ietf:rfc:8936"},
			"configuration_endpoint":     tx.URL + "/ssf/stream", "verification_endpoint": tx.URL + "/ssf/verify"})
	})
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer stream-secret" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			h(w, r)
		}
	}
	mux.HandleFunc("GET /ssf/stream", authed(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode([]any{}) // no stream yet
	}))
	mux.HandleFunc("POST /ssf/stream", authed(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		_ = json.NewDecoder(r.Body).Decode(&req)
		created = append(created, req)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"stream_id": "pdp-stream-1", "iss": "https://risk.northbank.example/",
			"delivery": map[string]any{"method": "urn:ietf:rfc:8936", "endpoint_url": tx.URL + "/ssf/poll"}})
	}))
	mux.HandleFunc("POST /ssf/verify", authed(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]string
		_ = json.NewDecoder(r.Body).Decode(&req)
		verified = append(verified, req)
		queue["verify-1"] = sign("verify-1", map[string]any{"format": "opaque", "id": req["stream_id"]},
			signals.SSFPrefix+"verification", map[string]any{"state": req["state"]})
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /ssf/poll", authed(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Ack []string `json:"ack"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		for _, j := range req.Ack {
			acked = append(acked, j)
			delete(queue, j)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"sets": queue, "moreAvailable": false})
	}))
	tx = httptest.NewServer(mux)
	defer tx.Close()

	data, err := os.ReadFile(filepath.Join(northbank, "pdp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "stream-token")
	writeFile(t, tokenFile, "stream-secret\n")
	cfg := replaceOnce(t, string(data), "      delivery: push\n", "      delivery: poll\n      configuration_url: "+tx.URL+"/.well-known/ssf-configuration\n"+
		"      stream_token_file: "+tokenFile+"\n      poll_interval: 100ms\n      poll_token_file: "+tokenFile+"\n")
	path := filepath.Join(dir, "pdp.yaml")
	writeFile(t, path, cfg)
	t.Setenv("PDP_SIGNALS_PATH", filepath.Join(dir, "signals.jsonl"))
	s := startNorthbank(t, "--config", path)

	eventually(t, "the verification event polled and stored", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(acked, "verify-1")
	})
	mu.Lock()
	if len(created) != 1 || created[0]["delivery"].(map[string]any)["method"] != "urn:ietf:rfc:8936" {
		t.Fatalf("stream creation requests: %v", created)
	}
	if len(verified) != 1 || verified[0]["stream_id"] != "pdp-stream-1" {
		t.Fatalf("verification requests: %v", verified)
	}
	mu.Unlock()
	pay := forUser("alice", `,"amount":250,"currency":"EUR"`)
	if d := s.sigAsk(t, "bob", "make_payment", "acc-alice", pay); !d.Decision {
		t.Fatalf("the verification event changed a decision: %v", d.Context.Reasons)
	}

	mu.Lock()
	queue["compromised-1"] = sign("compromised-1", map[string]any{"format": "iss_sub", "iss": "https://idp.northbank.example/", "sub": "bob"},
		signals.RISCPrefix+"credential-compromise", map[string]any{"credential_type": "password"})
	mu.Unlock()
	eventually(t, "the signal polled through the stream denies bob's payment", func() bool {
		d := s.sigAsk(t, "bob", "make_payment", "acc-alice", pay)
		return !d.Decision && slices.Equal(d.Context.Reasons, []string{"account_compromised"})
	})
}
