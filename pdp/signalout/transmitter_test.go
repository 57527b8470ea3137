package signalout

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/signals"
)

const (
	testIssuer   = "https://pdp.northbank.example/"
	testAudience = "https://app.northbank.example/"
)

func newKey(t testing.TB) jose.JSONWebKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: k, KeyID: "pdp-test-1", Algorithm: "ES256"}
}

// receiver is a real RFC 8935 receiver: it verifies each SET with the
// transmitter's published JWKS, and answers 503 while down.
type receiver struct {
	*httptest.Server
	down     atomic.Bool
	mu       sync.Mutex
	got      []*signals.SET
	attempts atomic.Int32
}

func newReceiver(t *testing.T, jwks func() jose.JSONWebKeySet) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.attempts.Add(1)
		if r.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if req.Header.Get("Content-Type") != "application/secevent+jwt" || req.Header.Get("Authorization") != "Bearer rcv-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		v, err := signals.NewVerifier([]signals.Transmitter{{Issuer: testIssuer, Audience: []string{testAudience},
			Keys: signals.StaticKeys(jwks().Keys), Algorithms: []string{"ES256"}}})
		if err != nil {
			t.Error(err)
			return
		}
		body, _ := io.ReadAll(req.Body)
		s, err := v.Verify(body, time.Now())
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"err": "invalid_key", "description": err.Error()})
			return
		}
		r.mu.Lock()
		r.got = append(r.got, s)
		r.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) sets() []*signals.SET {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*signals.SET(nil), r.got...)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func revoked(id string) delegation.Change {
	return delegation.Change{Action: "delegation.revoke", Reason: "lost trust",
		By: delegation.Actor{Application: "mobile-banking", Subject: delegation.Ref{Type: "user", ID: "alice"}},
		Delegation: delegation.Delegation{ID: id, Principal: delegation.Ref{Type: "user", ID: "alice"}, Agent: delegation.Ref{Type: "user", ID: "bob"},
			Status: delegation.StatusRevoked, History: []delegation.Event{{Type: "revoked", At: time.Now()}}}}
}

func open(t *testing.T, cfg Config) (*Transmitter, context.CancelFunc) {
	t.Helper()
	tx, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tx.Run(ctx) }()
	stop := func() { cancel(); <-done; _ = tx.Close() }
	t.Cleanup(stop)
	return tx, stop
}

// TestDeliversVerifiedSETs: a revoked delegation and a withdrawn consent
// reach the receiver as SETs it verifies with the published JWKS, with
// the documented event URIs and RFC 9493 subjects; changes nobody
// signals (an accept, a consent given) send nothing.
func TestDeliversVerifiedSETs(t *testing.T) {
	key := newKey(t)
	var tx *Transmitter
	rcv := newReceiver(t, func() jose.JSONWebKeySet { return tx.JWKS() })
	tx, _ = open(t, Config{Issuer: testIssuer, Key: key, SubjectIssuer: "https://idp.northbank.example/",
		OutboxPath: filepath.Join(t.TempDir(), "outbox.jsonl"), RetryMin: 10 * time.Millisecond,
		Receivers: []Receiver{{Endpoint: rcv.URL, Audience: testAudience, Token: "rcv-secret"}}})
	ctx := context.Background()
	tx.DelegationChanged(ctx, delegation.Change{Action: "delegation.accept", Delegation: revoked("d0").Delegation})
	tx.DelegationChanged(ctx, revoked("d1"))
	tx.ConsentChanged(ctx, consent.Change{Action: "consent.withdraw", Events: []consent.Event{
		{ID: "c1", Type: consent.EventWithdrawn, Subject: consent.Ref{Type: "user", ID: "carol"}, Purpose: "marketing", RecordedAt: time.Now()}}})
	tx.ConsentChanged(ctx, consent.Change{Action: "consent.give", Events: []consent.Event{{ID: "c2", Type: consent.EventGiven}}})
	eventually(t, "two SETs delivered", func() bool { return len(rcv.sets()) == 2 })
	tests := []struct {
		event, sub string
		field      string
		want       any
	}{
		{EventURI(testIssuer, DelegationRevoked), "bob", "delegation_id", "d1"},
		{EventURI(testIssuer, ConsentWithdrawn), "carol", "purpose", "marketing"},
	}
	for i, tt := range tests {
		s := rcv.sets()[i]
		if len(s.Events) != 1 || s.Events[0].Type != tt.event {
			t.Fatalf("SET %d: events %+v, want %s", i, s.Events, tt.event)
		}
		if s.SubID == nil || s.SubID.Format != "iss_sub" || s.SubID.Sub != tt.sub {
			t.Errorf("SET %d: sub_id %+v, want iss_sub %s", i, s.SubID, tt.sub)
		}
		var p map[string]any
		if err := json.Unmarshal(s.Events[0].Payload, &p); err != nil || p[tt.field] != tt.want {
			t.Errorf("SET %d: payload %s, want %s=%v", i, s.Events[0].Payload, tt.field, tt.want)
		}
	}
	if got := EventURI(testIssuer, DelegationRevoked); got != "https://pdp.northbank.example/events/delegation-revoked" {
		t.Errorf("EventURI = %s", got)
	}
}

// TestReceiverDownThenUp: SETs queued while the receiver is down are
// retried and delivered, in order, once it is up — also across a restart
// of the transmitter (the outbox file).
func TestReceiverDownThenUp(t *testing.T) {
	key := newKey(t)
	var tx *Transmitter
	rcv := newReceiver(t, func() jose.JSONWebKeySet { return tx.JWKS() })
	rcv.down.Store(true)
	cfg := Config{Issuer: testIssuer, Key: key, OutboxPath: filepath.Join(t.TempDir(), "outbox.jsonl"),
		RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		Receivers: []Receiver{{Endpoint: rcv.URL, Audience: testAudience, Token: "rcv-secret", Events: []string{DelegationRevoked, DelegationSuspended}}}}
	tx, stop := open(t, cfg)
	tx.DelegationChanged(context.Background(), revoked("d1"))
	tx.DelegationChanged(context.Background(), revoked("d2"))
	eventually(t, "attempts while down", func() bool { return rcv.attempts.Load() >= 3 })
	if n := tx.Pending(rcv.URL); n != 2 {
		t.Fatalf("pending %d, want 2", n)
	}
	// The PDP stops with two SETs pending (after showing that its outbox
	// is its own).
	if _, err := Open(cfg); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second transmitter on the same outbox: %v, want ErrLocked", err)
	}
	stop()
	tx, stop = open(t, cfg)
	rcv.down.Store(false)
	eventually(t, "both delivered after the restart", func() bool { return len(rcv.sets()) == 2 })
	for i, want := range []string{"d1", "d2"} {
		var p map[string]any
		_ = json.Unmarshal(rcv.sets()[i].Events[0].Payload, &p)
		if p["delegation_id"] != want {
			t.Errorf("SET %d is about %v, want %s", i, p["delegation_id"], want)
		}
		if s := rcv.sets()[i].SubID; s == nil || s.Format != "opaque" || s.ID != "user:bob" {
			t.Errorf("SET %d: sub_id %+v, want opaque user:bob", i, s)
		}
	}
	eventually(t, "nothing pending", func() bool { return tx.Pending(rcv.URL) == 0 })
	// Delivered SETs are not sent again after another restart.
	stop()
	tx2, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Close()
	if n := tx2.Pending(rcv.URL); n != 0 {
		t.Fatalf("pending after restart %d, want 0", n)
	}
}

// TestRefusedSETDropped: a receiver's 400 (RFC 8935: it will never take
// that SET) drops it; the next is delivered.
func TestRefusedSETDropped(t *testing.T) {
	var tx *Transmitter
	other := newKey(t) // the receiver trusts another key first
	useOther := atomic.Bool{}
	useOther.Store(true)
	rcv := newReceiver(t, func() jose.JSONWebKeySet {
		if useOther.Load() {
			return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{other.Public()}}
		}
		return tx.JWKS()
	})
	tx, _ = open(t, Config{Issuer: testIssuer, Key: newKey(t), OutboxPath: filepath.Join(t.TempDir(), "o.jsonl"), RetryMin: 10 * time.Millisecond,
		Receivers: []Receiver{{Endpoint: rcv.URL, Audience: testAudience, Token: "rcv-secret"}}})
	tx.DelegationChanged(context.Background(), revoked("d1"))
	eventually(t, "refused", func() bool { return rcv.attempts.Load() == 1 && tx.Pending(rcv.URL) == 0 })
	useOther.Store(false)
	tx.DelegationChanged(context.Background(), revoked("d2"))
	eventually(t, "the next delivered", func() bool { return len(rcv.sets()) == 1 })
}

func TestOpenRefusesBadConfig(t *testing.T) {
	key := newKey(t)
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no issuer", Config{Key: key}},
		{"public key", Config{Issuer: testIssuer, Key: key.Public()}},
		{"receiver without audience", Config{Issuer: testIssuer, Key: key, Receivers: []Receiver{{Endpoint: "http://127.0.0.1:1/"}}}},
		{"unknown event", Config{Issuer: testIssuer, Key: key, Receivers: []Receiver{{Endpoint: "http://127.0.0.1:1/", Audience: "a", Events: []string{"nope"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.OutboxPath = filepath.Join(dir, "o.jsonl")
			if _, err := Open(tt.cfg); err == nil {
				t.Fatal("opened")
			}
		})
	}
}

// FuzzOutbox: whatever the outbox file holds (a torn line, garbage), it
// opens without panicking and keeps only well-formed pending entries.
func FuzzOutbox(f *testing.F) {
	f.Add([]byte(`{"op":"queue","jti":"a","receiver":"r","set":"x"}` + "\n" + `{"op":"done","jti":"a"}` + "\n"))
	f.Add([]byte(`{"op":"queue","jti":"b","receiver":"r","set":"x"}` + "\n{\"op\":"))
	f.Add([]byte("\x00\xff\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "o.jsonl")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		box, pending, err := openOutbox(path)
		if err != nil {
			return
		}
		_ = box.close()
		for _, e := range pending {
			if e.Op != "queue" {
				t.Fatalf("pending entry %+v", e)
			}
		}
		box2, again, err := openOutbox(path)
		if err != nil {
			t.Fatal(err)
		}
		defer box2.close()
		if len(again) != len(pending) {
			t.Fatalf("reopened: %d pending, want %d", len(again), len(pending))
		}
	})
}

// TestOutboxBounded: a receiver with MaxPending SETs waiting gets no more
// (counted as dropped); once everything is delivered the grown outbox
// file is emptied.
func TestOutboxBounded(t *testing.T) {
	defer func(old int64) { compactAt = old }(compactAt)
	compactAt = 1
	var tx *Transmitter
	rcv := newReceiver(t, func() jose.JSONWebKeySet { return tx.JWKS() })
	rcv.down.Store(true)
	path := filepath.Join(t.TempDir(), "o.jsonl")
	cfg := Config{Issuer: testIssuer, Key: newKey(t), OutboxPath: path, RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		Receivers: []Receiver{{Endpoint: rcv.URL, Audience: testAudience, Token: "rcv-secret"}}}
	tx, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tx.maxPending = 2
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tx.Run(ctx) }()
	defer func() { cancel(); <-done; _ = tx.Close() }()
	for _, id := range []string{"d1", "d2", "d3"} {
		tx.DelegationChanged(context.Background(), revoked(id))
	}
	if n := tx.Pending(rcv.URL); n != 2 {
		t.Fatalf("pending %d, want 2", n)
	}
	rcv.down.Store(false)
	eventually(t, "two delivered", func() bool { return len(rcv.sets()) == 2 && tx.Pending(rcv.URL) == 0 })
	eventually(t, "the outbox emptied", func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Size() == 0
	})
}
