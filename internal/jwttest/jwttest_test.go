package jwttest_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"reflect"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/ciampdp/pdp/internal/jwttest"
)

// TestSign: a token of each algorithm family verifies with the public
// key, carries typ JWT and the kid of a JSONWebKey, and its claims.
func TestSign(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"sub": "alice", "n": float64(1)}
	for _, tc := range []struct {
		name string
		alg  jose.SignatureAlgorithm
		key  any
		pub  any
		kid  string
	}{
		{"ES256, JWK with kid", jose.ES256, jose.JSONWebKey{Key: ec, KeyID: "k1"}, &ec.PublicKey, "k1"},
		{"RS256, bare key", jose.RS256, rk, &rk.PublicKey, ""},
		{"EdDSA", jose.EdDSA, edPriv, edPub, ""},
	} {
		tok, err := jwt.ParseSigned(jwttest.Sign(t, tc.alg, tc.key, claims), []jose.SignatureAlgorithm{tc.alg})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if h := tok.Headers[0]; h.KeyID != tc.kid || h.ExtraHeaders[jose.HeaderType] != "JWT" {
			t.Errorf("%s: header %+v", tc.name, h)
		}
		var got map[string]any
		if err := tok.Claims(tc.pub, &got); err != nil || !reflect.DeepEqual(got, claims) {
			t.Errorf("%s: claims %v %v, want %v", tc.name, got, err, claims)
		}
	}
}

// TestClaims: over replaces, adds and (nil) deletes; base is unchanged.
func TestClaims(t *testing.T) {
	base := map[string]any{"iss": "a", "sub": "alice", "jti": "x"}
	got := jwttest.Claims(base, map[string]any{"sub": "bob", "azp": "web", "jti": nil})
	if want := map[string]any{"iss": "a", "sub": "bob", "azp": "web"}; !reflect.DeepEqual(got, want) {
		t.Errorf("claims %v, want %v", got, want)
	}
	if len(base) != 3 || base["sub"] != "alice" {
		t.Errorf("base changed: %v", base)
	}
	if got := jwttest.Claims(nil, map[string]any{"a": 1}); got["a"] != 1 {
		t.Errorf("nil base: %v", got)
	}
}
