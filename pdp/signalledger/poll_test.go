package signalledger

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ciampdp/pdp/pdp/signals"
)

// transmitterFake is a poll endpoint (RFC 8936) at the edge we do not
// own: it hands out its queued SETs, forgets those acknowledged, and keeps
// the errors it was told.
type transmitterFake struct {
	mu      sync.Mutex
	queue   map[string]string
	acked   []string
	errs    map[string]pollErr
	batch   int
	token   string
	lastReq pollRequest
}

func (f *transmitterFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var req pollRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.lastReq = req
	for _, j := range req.Ack {
		f.acked = append(f.acked, j)
		delete(f.queue, j)
	}
	for j, e := range req.SetErrs {
		f.errs[j] = e
		delete(f.queue, j)
	}
	out := map[string]string{}
	keys := make([]string, 0, len(f.queue))
	for k := range f.queue {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if len(out) == f.batch {
			break
		}
		out[k] = f.queue[k]
	}
	_ = json.NewEncoder(w).Encode(pollAnswer{Sets: out, MoreAvailable: len(f.queue) > len(out)})
}

func TestPoller(t *testing.T) {
	pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := jose.JSONWebKey{Key: pk, KeyID: "k", Algorithm: "ES256"}
	v, err := signals.NewVerifier([]signals.Transmitter{{Issuer: testIss, Audience: []string{"https://pdp.example/"}, Keys: signals.StaticKeys{key.Public()}}})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(jti, sub, aud string) string {
		s, err := signals.Sign(key, map[string]any{"iss": testIss, "aud": aud, "iat": testNow.Unix(), "jti": jti,
			"sub_id": map[string]any{"format": "iss_sub", "iss": idpIss, "sub": sub},
			"events": map[string]any{signals.RISCPrefix + "account-disabled": map[string]any{}}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	f := &transmitterFake{token: "poll-secret", batch: 2, errs: map[string]pollErr{}, queue: map[string]string{
		"p-1": mk("p-1", "bob", "https://pdp.example/"),
		"p-2": mk("p-2", "carol", "https://pdp.example/"),
		"p-3": mk("p-3", "dave", "https://elsewhere.example/"),
		"p-4": mk("p-other", "erin", "https://pdp.example/"),
	}}
	hs := httptest.NewServer(f)
	defer hs.Close()
	st, err := OpenFile(filepath.Join(t.TempDir(), "s.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := northbankRegistry(t)
	l, err := NewLedger(context.Background(), LedgerConfig{Store: st, Registry: func() *signals.Registry { return reg }})
	if err != nil {
		t.Fatal(err)
	}
	p := &Poller{URL: hs.URL, Token: "poll-secret", Verify: v.Verify, Ledger: l, Now: func() time.Time { return testNow }}
	for i := 0; ; i++ {
		more, err := p.Poll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !more && len(p.ack) == 0 && len(p.setErr) == 0 {
			break
		}
		if i > 5 {
			t.Fatal("the poller does not drain the queue")
		}
	}
	slices.Sort(f.acked)
	if !slices.Equal(f.acked, []string{"p-1", "p-2"}) {
		t.Fatalf("acknowledged %v", f.acked)
	}
	if f.errs["p-3"].Err != signals.ErrCodeInvalidAudience || f.errs["p-4"].Err != signals.ErrCodeInvalidRequest {
		t.Fatalf("errors reported %+v", f.errs)
	}
	if len(l.For(`User::"bob"`)) != 1 || len(l.For(`User::"carol"`)) != 1 || len(l.For(`User::"dave"`)) != 0 {
		t.Fatal("the polled SETs are not (only) the stored ones")
	}
	// A SET delivered again (the transmitter lost the ack) is acknowledged
	// again and stored once.
	f.queue["p-1"] = mk("p-1", "bob", "https://pdp.example/")
	if _, err := p.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(l.For(`User::"bob"`)) != 1 || f.acked[len(f.acked)-1] != "p-1" {
		t.Fatalf("redelivery: %d events, acks %v", len(l.For(`User::"bob"`)), f.acked)
	}
	// A wrong token is an error, and nothing is acknowledged.
	p.Token = "wrong"
	if _, err := p.Poll(context.Background()); err == nil {
		t.Fatal("a refused poll is no error")
	}
}
