// Package actorprooftest is an identity provider for tests: it signs
// actor tokens with a fresh key and builds real actorproof.Provers that
// trust it, so the services' tests prove actors the way the PDP does.
package actorprooftest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ciampdp/pdp/internal/jwttest"
	"github.com/ciampdp/pdp/pdp/actorproof"
	"github.com/ciampdp/pdp/pdp/jwtverify"
)

// The issuer and audience of the tokens.
const (
	Issuer   = "https://idp.test/"
	Audience = "https://pdp.test/"
)

// IdP signs tokens with one ES256 key.
type IdP struct {
	key  *ecdsa.PrivateKey
	jwks string
}

// New returns an IdP whose JWKS is written to a temporary file of t.
func New(t testing.TB) *IdP {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return &IdP{key: k, jwks: file}
}

// Prover is a Prover trusting the IdP, bound as opts say (opts.Leeway
// is the verifier's too; 0 means the verifier's default).
func (p *IdP) Prover(t testing.TB, opts actorproof.Options) *actorproof.Prover {
	t.Helper()
	v, err := jwtverify.New(jwtverify.Config{JWKSFile: p.jwks, Issuer: Issuer, Audience: []string{Audience}, Algorithms: []string{"ES256"}, Leeway: opts.Leeway},
		jwtverify.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return actorproof.New(v, opts)
}

// Token is a token of sub issued to client (azp; none when ""), valid
// for a minute, with a fresh jti; claims are added or replace these (a
// nil value deletes).
func (p *IdP) Token(t testing.TB, sub, client string, claims map[string]any) string {
	t.Helper()
	now := time.Now()
	c := map[string]any{"iss": Issuer, "aud": Audience, "sub": sub, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": rand.Text()}
	if client != "" {
		c["azp"] = client
	}
	return jwttest.Sign(t, jose.ES256, jose.JSONWebKey{Key: p.key, KeyID: "k1"}, jwttest.Claims(c, claims))
}
