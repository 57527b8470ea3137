package actorproof

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ciampdp/pdp/internal/jwttest"
	"github.com/ciampdp/pdp/pdp/jwtverify"
)

const (
	issuer   = "https://idp.example/"
	audience = "https://pdp.example/"
)

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sign is claims signed with k (ES256, kid k1).
func sign(t testing.TB, k *ecdsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	return jwttest.Sign(t, jose.ES256, jose.JSONWebKey{Key: k, KeyID: "k1"}, claims)
}

// proverFor is a Prover trusting key's public half, from a JWKS file.
func proverFor(t testing.TB, key *ecdsa.PrivateKey) *Prover {
	t.Helper()
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := jwtverify.New(jwtverify.Config{JWKSFile: file, Issuer: issuer, Audience: []string{audience}, Algorithms: []string{"ES256"}}, jwtverify.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return New(v, Options{})
}

func TestProve(t *testing.T) {
	key := newKey(t)
	p := proverFor(t, key)
	now := time.Now()
	claims := func(sub string, extra map[string]any) map[string]any {
		c := map[string]any{"iss": issuer, "aud": audience, "sub": sub, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	for _, tc := range []struct {
		name, token, typ, id string
		ok                   bool
	}{
		{"alice's token for alice", sign(t, key, claims("alice", nil)), "user", "alice", true},
		{"no token", "", "user", "alice", false},
		{"mallory's token for alice", sign(t, key, claims("mallory", nil)), "user", "alice", false},
		{"alice's token for an organisation alice", sign(t, key, claims("alice", nil)), "organisation", "alice", false},
		{"expired", sign(t, key, claims("alice", map[string]any{"exp": now.Add(-time.Hour).Unix()})), "user", "alice", false},
		{"issued in the future", sign(t, key, claims("alice", map[string]any{"iat": now.Add(time.Hour).Unix()})), "user", "alice", false},
		{"no expiry", sign(t, key, map[string]any{"iss": issuer, "aud": audience, "sub": "alice"}), "user", "alice", false},
		{"another key", sign(t, newKey(t), claims("alice", nil)), "user", "alice", false},
		{"wrong audience", sign(t, key, claims("alice", map[string]any{"aud": "mobile-banking"})), "user", "alice", false},
		{"no subject", sign(t, key, claims("", nil)), "user", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Prove(WithToken(context.Background(), tc.token), "app", tc.typ, tc.id)
			if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrUnproven)) {
				t.Fatalf("Prove: %v, want ok=%v (or ErrUnproven)", err, tc.ok)
			}
		})
	}
}

// TestProveKeysUnavailable: when the keys cannot be fetched the change is
// refused as the PDP's failure (ErrKeysUnavailable), not the caller's.
func TestProveKeysUnavailable(t *testing.T) {
	v, err := jwtverify.New(jwtverify.Config{JWKSURL: "https://127.0.0.1:1/jwks.json", Issuer: issuer, Audience: []string{audience}}, jwtverify.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, newKey(t), map[string]any{"iss": issuer, "aud": audience, "sub": "alice", "exp": time.Now().Add(time.Minute).Unix()})
	err = New(v, Options{}).Prove(WithToken(context.Background(), tok), "app", "user", "alice")
	if !errors.Is(err, ErrKeysUnavailable) || errors.Is(err, ErrUnproven) {
		t.Fatalf("Prove: %v, want ErrKeysUnavailable", err)
	}
}

// BenchmarkProve: what actor proof adds to one admin change (an ES256
// verification and the claim checks).
func BenchmarkProve(b *testing.B) {
	key := newKey(b)
	p := proverFor(b, key)
	ctx := WithToken(context.Background(), sign(b, key, map[string]any{"iss": issuer, "aud": audience, "sub": "alice",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Prove(ctx, "app", "user", "alice"); err != nil {
			b.Fatal(err)
		}
	}
}
