package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ciampdp/pdp/internal/jwttest"
	"github.com/ciampdp/pdp/pdp/jwtverify"
)

// TestVerifyMatrix checks each way a token can fail, against a JWKS file.
func TestVerifyMatrix(t *testing.T) {
	iss := newIssuer(t, "k1")
	v, err := NewVerifier(testJWT(iss.writeJWKS("", "k1")), VerifierDeps{})
	if err != nil {
		t.Fatal(err)
	}
	other := newIssuer(t, "k1") // same kid, different key
	now := time.Now()
	good := stdClaims("alice")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		token   string
		wantErr string // TokenError reason; "" means valid
	}{
		{"good", iss.sign("k1", good), ""},
		{"audience in an array", iss.sign("k1", with(good, map[string]any{"aud": []string{"other", testAudience}})), ""},
		{"expired within leeway", iss.sign("k1", with(good, map[string]any{"exp": now.Add(-10 * time.Second).Unix()})), ""},
		{"not before within leeway", iss.sign("k1", with(good, map[string]any{"nbf": now.Add(10 * time.Second).Unix()})), ""},
		{"expired", iss.sign("k1", with(good, map[string]any{"exp": now.Add(-2 * time.Minute).Unix()})), "token expired"},
		{"not yet valid", iss.sign("k1", with(good, map[string]any{"nbf": now.Add(2 * time.Minute).Unix()})), "token not valid yet"},
		{"issued in the future", iss.sign("k1", with(good, map[string]any{"iat": now.Add(2 * time.Minute).Unix()})), "token issued in the future"},
		{"no expiry", iss.sign("k1", with(good, map[string]any{"exp": nil})), "token has no expiry"},
		{"wrong issuer", iss.sign("k1", with(good, map[string]any{"iss": "https://evil.test/"})), "wrong issuer"},
		{"no issuer", iss.sign("k1", with(good, map[string]any{"iss": nil})), "wrong issuer"},
		{"wrong audience", iss.sign("k1", with(good, map[string]any{"aud": "other-api"})), "wrong audience"},
		{"no audience", iss.sign("k1", with(good, map[string]any{"aud": nil})), "wrong audience"},
		{"bad signature (other key, same kid)", other.sign("k1", good), "signature does not verify"},
		{"tampered payload", tamper(t, iss.sign("k1", good)), "signature does not verify"},
		{"unknown kid", func() string { k := newIssuer(t, "k9"); return k.sign("k9", good) }(), "unknown signing key"},
		{"alg none", unsigned(t, "k1", good), "malformed token or algorithm not accepted"},
		{"HS256 with a shared secret", jwttest.Sign(t, jose.HS256, []byte("0123456789abcdef0123456789abcdef"), good), "malformed token or algorithm not accepted"},
		{"RS256 with a key not in the set", jwttest.Sign(t, jose.RS256, jose.JSONWebKey{Key: rsaKey, KeyID: "k1"}, good), "unknown signing key"},
		{"garbage", "not.a.token", "malformed token or algorithm not accepted"},
		{"empty", "", "malformed token or algorithm not accepted"},
		{"too large", strings.Repeat("a", jwtverify.MaxTokenBytes+1), "token too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims, err := v.Verify(context.Background(), tt.token)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if claims["sub"] != "alice" {
					t.Errorf("sub = %v", claims["sub"])
				}
				return
			}
			var te *TokenError
			if !errors.As(err, &te) {
				t.Fatalf("err = %v, want a *TokenError %q", err, tt.wantErr)
			}
			if te.Reason != tt.wantErr {
				t.Errorf("reason %q, want %q (%v)", te.Reason, tt.wantErr, err)
			}
		})
	}
}

// tamper changes the payload of a signed token, keeping its signature.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	evil, _ := json.Marshal(stdClaims("mallory"))
	parts[1] = base64.RawURLEncoding.EncodeToString(evil)
	return strings.Join(parts, ".")
}

// jwksServer serves a JWKS over TLS and counts the fetches.
type jwksServer struct {
	*httptest.Server
	mu    sync.Mutex
	body  []byte
	code  int
	count atomic.Int32
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body, code: http.StatusOK}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.count.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(s.code)
		_, _ = w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(code int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.code, s.body = code, body
}

// TestJWKSRefresh checks the key cache against an https JWKS: lazy first
// fetch, refresh on an unknown kid (rate-limited), periodic refresh, and
// stale keys kept when the source fails.
func TestJWKSRefresh(t *testing.T) {
	iss := newIssuer(t, "k1", "k2")
	srv := newJWKSServer(t, iss.jwks("k1"))
	clk := newClock()
	cfg := JWTConfig{JWKSURL: srv.URL + "/jwks", Issuer: testIssuer, Audience: []string{testAudience},
		MinRefreshInterval: time.Minute, RefreshInterval: time.Hour}
	v, err := NewVerifier(cfg, VerifierDeps{HTTPClient: srv.Client(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	verify := func(kid, wantErr string) {
		t.Helper()
		_, err := v.Verify(ctx, iss.sign(kid, stdClaimsAt("alice", clk.Now())))
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("kid %s: %v", kid, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Fatalf("kid %s: err = %v, want %q", kid, err, wantErr)
		}
	}
	fetches := func(want int32) {
		t.Helper()
		if got := srv.count.Load(); got != want {
			t.Fatalf("%d fetches, want %d", got, want)
		}
	}

	fetches(0) // a URL is fetched lazily
	verify("k1", "")
	fetches(1)
	verify("k1", "")
	fetches(1) // cached

	// The issuer rotates to k2: the unknown kid triggers one reload.
	srv.set(http.StatusOK, iss.jwks("k1", "k2"))
	clk.advance(2 * time.Minute)
	verify("k2", "")
	fetches(2)

	// An unknown kid right after a reload does not fetch again...
	iss.addKey("k3")
	verify("k3", "unknown signing key")
	fetches(2)
	// ...but does once the minimum interval has passed.
	srv.set(http.StatusOK, iss.jwks("k1", "k2", "k3"))
	clk.advance(61 * time.Second)
	verify("k3", "")
	fetches(3)

	// Keys older than the refresh interval are reloaded on use; when the
	// reload fails the old keys keep working, and the failing source is
	// not asked again before the minimum interval.
	srv.set(http.StatusInternalServerError, nil)
	clk.advance(2 * time.Hour)
	verify("k1", "")
	fetches(4)
	verify("k1", "")
	fetches(4)

	// An unknown kid while the source is down: keys unavailable.
	clk.advance(2 * time.Minute)
	iss.addKey("k4")
	_, err = v.Verify(ctx, iss.sign("k4", stdClaimsAt("alice", clk.Now())))
	if !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("err = %v, want ErrKeysUnavailable", err)
	}
}

// TestJWKSFileRefresh checks that an unknown kid re-reads a JWKS file.
func TestJWKSFileRefresh(t *testing.T) {
	iss := newIssuer(t, "k1", "k2")
	path := iss.writeJWKS("", "k1")
	clk := newClock()
	cfg := testJWT(path)
	cfg.MinRefreshInterval = time.Second
	v, err := NewVerifier(cfg, VerifierDeps{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok := iss.sign("k2", stdClaimsAt("alice", clk.Now()))
	if _, err := v.Verify(context.Background(), tok); err == nil {
		t.Fatal("k2 verified before it was published")
	}
	iss.writeJWKS(path, "k1", "k2")
	clk.advance(2 * time.Second)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after the file gained k2: %v", err)
	}
}

// TestJWKSUnavailable: no keys at all is ErrKeysUnavailable, not a token
// error; a missing file fails at construction.
func TestJWKSUnavailable(t *testing.T) {
	iss := newIssuer(t, "k1")
	srv := newJWKSServer(t, nil)
	srv.set(http.StatusServiceUnavailable, nil)
	v, err := NewVerifier(JWTConfig{JWKSURL: srv.URL, Issuer: testIssuer, Audience: []string{testAudience}},
		VerifierDeps{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), iss.sign("k1", stdClaims("alice"))); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("err = %v, want ErrKeysUnavailable", err)
	}
	if err := v.Load(context.Background()); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("Load: %v, want ErrKeysUnavailable", err)
	}
	if _, err := NewVerifier(testJWT("/nonexistent/jwks.json"), VerifierDeps{}); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("missing file: %v, want ErrKeysUnavailable", err)
	}
}

// TestParseJWKS keeps only public signature keys.
func TestParseJWKS(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	encKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: priv, KeyID: "private-half-given", Algorithm: "ES256"},
		{Key: &encKey.PublicKey, KeyID: "enc", Use: "enc"},
		{Key: []byte("0123456789abcdef"), KeyID: "oct", Algorithm: "HS256"},
	}}
	raw, _ := json.Marshal(set)
	keys, err := jwtverify.ParseJWKS(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].KeyID != "private-half-given" || !keys[0].IsPublic() {
		t.Fatalf("keys = %+v, want only the public half of private-half-given", keys)
	}
	if _, err := jwtverify.ParseJWKS([]byte(`{"keys":[]}`)); err == nil {
		t.Error("an empty JWKS was accepted")
	}
	if _, err := jwtverify.ParseJWKS([]byte(`nope`)); err == nil {
		t.Error("garbage was accepted")
	}
}

// TestJWKSHerd: many requests while the JWKS source is down and no keys
// are loaded make one fetch, not one each.
func TestJWKSHerd(t *testing.T) {
	var fetches atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		time.Sleep(50 * time.Millisecond)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	v, err := NewVerifier(JWTConfig{JWKSURL: srv.URL, Issuer: testIssuer, Audience: []string{testAudience}},
		VerifierDeps{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	tok := newIssuer(t, "k1").sign("k1", stdClaims("alice"))
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrKeysUnavailable) {
				t.Errorf("err = %v, want ErrKeysUnavailable", err)
			}
		})
	}
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
}
