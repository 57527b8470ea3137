// Package jwttest signs JWTs for tests: the one place the tests of the
// PDP, the sidecar and the command build the tokens they verify.
package jwttest

import (
	"maps"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Sign is claims signed with key under alg as a compact JWT with the
// header typ "JWT". key is what jose.SigningKey takes: a private key, or
// a jose.JSONWebKey holding one (its KeyID becomes the header's kid). A
// failure fails t.
func Sign(t testing.TB, alg jose.SignatureAlgorithm, key any, claims any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Claims is a copy of base with over applied: a value replaces or adds
// the claim, a nil value deletes it.
func Claims(base, over map[string]any) map[string]any {
	c := maps.Clone(base)
	if c == nil {
		c = map[string]any{}
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}
