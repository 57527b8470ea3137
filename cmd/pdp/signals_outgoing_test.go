package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/jwtverify"
	"github.com/ciampdp/pdp/pdp/signals"
)

// ssfReceiver is an application receiving the PDP's risk signals (RFC
// 8935): it reads the PDP's SSF configuration, fetches the JWKS it names
// and verifies every SET with it; while down it answers 503.
type ssfReceiver struct {
	*httptest.Server
	pdpURL   string
	down     atomic.Bool
	attempts atomic.Int32
	mu       sync.Mutex
	got      []*signals.SET
	errs     []string
	lastAt   time.Time // when the latest SET was taken
}

func newSSFReceiver(t *testing.T) *ssfReceiver {
	t.Helper()
	r := &ssfReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.attempts.Add(1)
		if r.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if req.Header.Get("Authorization") != "Bearer app-ssf-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(req.Body)
		s, err := r.verify(body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.errs = append(r.errs, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"err": "invalid_key", "description": err.Error()})
			return
		}
		r.got = append(r.got, s)
		r.lastAt = time.Now()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(r.Close)
	return r
}

// verify checks a SET with the keys the PDP publishes.
func (r *ssfReceiver) verify(body []byte) (*signals.SET, error) {
	var conf struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Methods []string `json:"delivery_methods_supported"`
	}
	if err := getJSON(r.pdpURL+"/.well-known/ssf-configuration", &conf); err != nil {
		return nil, err
	}
	res, err := http.Get(conf.JWKSURI)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	keys, err := jwtverify.ParseJWKS(raw)
	if err != nil {
		return nil, err
	}
	v, err := signals.NewVerifier([]signals.Transmitter{{Issuer: conf.Issuer, Audience: []string{"https://app.northbank.example/"},
		Keys: signals.StaticKeys(keys), Algorithms: []string{"ES256"}}})
	if err != nil {
		return nil, err
	}
	return v.Verify(body, time.Now())
}

func getJSON(url string, v any) error {
	res, err := http.Get(url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, res.Status)
	}
	return json.NewDecoder(res.Body).Decode(v)
}

func (r *ssfReceiver) sets() []*signals.SET {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*signals.SET(nil), r.got...)
}

// startNorthbankTransmitting serves Northbank with rcv as a receiver of
// the PDP's outgoing signals.
func startNorthbankTransmitting(t *testing.T, rcv *ssfReceiver) *server {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(northbank, "pdp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	token := filepath.Join(dir, "app-token")
	writeFile(t, token, "app-ssf-secret\n")
	cfg := replaceOnce(t, string(data), "    # receivers:\n", "    retry_max: 200ms\n    receivers:\n      - endpoint: "+rcv.URL+"/ssf/events\n"+
		"        audience: https://app.northbank.example/\n        token_file: "+token+"\n"+
		"        events: [delegation-revoked, delegation-suspended, consent-withdrawn]\n")
	path := filepath.Join(dir, "pdp.yaml")
	writeFile(t, path, cfg)
	s := startNorthbank(t, "--config", path)
	rcv.pdpURL = s.URL
	return s
}

// TestOutgoingSignals: the PDP is a transmitter of its own changes. Its
// SSF configuration and JWKS are published; alice revokes bob's power of
// attorney while the application receiving signals is down, and once it
// is up it gets the SET, verified with the published keys; alice's
// withdrawn consent follows as a consent-withdrawn SET.
func TestOutgoingSignals(t *testing.T) {
	rcv := newSSFReceiver(t)
	rcv.down.Store(true)
	s := startNorthbankTransmitting(t, rcv)

	var conf map[string]any
	if err := getJSON(s.URL+"/.well-known/ssf-configuration", &conf); err != nil {
		t.Fatal(err)
	}
	if conf["issuer"] != "https://pdp.northbank.example/" || conf["jwks_uri"] != s.URL+"/.well-known/ssf-jwks.json" {
		t.Fatalf("ssf-configuration: %v", conf)
	}

	start := time.Now()
	if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/poa-alice-bob/revoke", actorBody("alice"), ""); a.Code != http.StatusOK {
		t.Fatalf("alice revokes: %d %s", a.Code, a.Body)
	}
	t.Logf("revoke answered in %v with the receiver down", time.Since(start))
	eventually(t, "the PDP tried the receiver while it was down", func() bool { return rcv.attempts.Load() >= 2 })
	if n := len(rcv.sets()); n != 0 {
		t.Fatalf("%d SETs while down", n)
	}
	rcv.down.Store(false)
	eventually(t, "the revocation delivered once the receiver is up", func() bool { return len(rcv.sets()) == 1 })
	set := rcv.sets()[0]
	if set.Issuer != "https://pdp.northbank.example/" || len(set.Events) != 1 ||
		set.Events[0].Type != "https://pdp.northbank.example/events/delegation-revoked" {
		t.Fatalf("SET %+v", set)
	}
	if set.SubID == nil || set.SubID.Format != "iss_sub" || set.SubID.Iss != "https://idp.northbank.example/" || set.SubID.Sub != "bob" {
		t.Fatalf("sub_id %+v, want iss_sub bob", set.SubID)
	}
	var p map[string]any
	if err := json.Unmarshal(set.Events[0].Payload, &p); err != nil || p["delegation_id"] != "poa-alice-bob" || p["initiating_entity"] != "principal" {
		t.Fatalf("payload %s", set.Events[0].Payload)
	}

	called := time.Now()
	if a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/consents/withdraw",
		`{"subject":{"type":"user","id":"alice"},"purpose":"financial_advice","reason":"changed my mind"}`, ""); a.Code != http.StatusOK {
		t.Fatalf("alice withdraws: %d %s", a.Code, a.Body)
	}
	answered := time.Since(called)
	eventually(t, "the withdrawal delivered", func() bool { return len(rcv.sets()) == 2 })
	rcv.mu.Lock()
	t.Logf("withdraw answered %v after the call; the receiver took its SET %v after the call", answered, rcv.lastAt.Sub(called))
	rcv.mu.Unlock()
	set = rcv.sets()[1]
	if set.Events[0].Type != "https://pdp.northbank.example/events/consent-withdrawn" || set.SubID.Sub != "alice" {
		t.Fatalf("SET %+v %+v", set.Events, set.SubID)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.errs) > 0 {
		t.Fatalf("the receiver refused SETs: %v", rcv.errs)
	}
}
