package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ciampdp/pdp/internal/jwttest"
)

// Test token issuer: ES256 keys by key id, tokens with the standard claims
// the tests' JWTConfig expects.
const (
	testIssuer   = "https://idp.test/"
	testAudience = "bank-api"
)

type issuer struct {
	t    testing.TB
	mu   sync.Mutex
	keys map[string]*ecdsa.PrivateKey
}

func newIssuer(t testing.TB, kids ...string) *issuer {
	t.Helper()
	i := &issuer{t: t, keys: map[string]*ecdsa.PrivateKey{}}
	for _, kid := range kids {
		i.addKey(kid)
	}
	return i
}

func (i *issuer) addKey(kid string) *ecdsa.PrivateKey {
	i.t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		i.t.Fatal(err)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys[kid] = k
	return k
}

// jwks is the public JWKS of the given key ids (all when none given).
func (i *issuer) jwks(kids ...string) []byte {
	i.t.Helper()
	i.mu.Lock()
	defer i.mu.Unlock()
	if len(kids) == 0 {
		for kid := range i.keys {
			kids = append(kids, kid)
		}
	}
	var set jose.JSONWebKeySet
	for _, kid := range kids {
		k := i.keys[kid]
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		i.t.Fatal(err)
	}
	return b
}

// writeJWKS writes the JWKS of kids to a file in a temp dir and returns
// its path (or rewrites path when given).
func (i *issuer) writeJWKS(path string, kids ...string) string {
	i.t.Helper()
	if path == "" {
		path = filepath.Join(i.t.TempDir(), "jwks.json")
	}
	if err := os.WriteFile(path, i.jwks(kids...), 0o600); err != nil {
		i.t.Fatal(err)
	}
	return path
}

// stdClaims are the standard claims of a good token for sub, now.
func stdClaims(sub string) map[string]any { return stdClaimsAt(sub, time.Now()) }

// stdClaimsAt are the standard claims of a good token for sub at now.
func stdClaimsAt(sub string, now time.Time) map[string]any {
	return map[string]any{
		"iss": testIssuer,
		"aud": testAudience,
		"sub": sub,
		"iat": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(),
	}
}

// with returns a copy of base with the changes; a nil value deletes.
func with(base map[string]any, changes map[string]any) map[string]any {
	out := maps.Clone(base)
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// sign signs claims with key kid (ES256), naming kid in the header.
func (i *issuer) sign(kid string, claims map[string]any) string {
	i.t.Helper()
	i.mu.Lock()
	k := i.keys[kid]
	i.mu.Unlock()
	return jwttest.Sign(i.t, jose.ES256, jose.JSONWebKey{Key: k, KeyID: kid}, claims)
}

// unsigned builds an "alg":"none" token.
func unsigned(t testing.TB, kid string, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "."
}

// testJWT is the JWT config of the tests, over JWKS file path.
func testJWT(path string) JWTConfig {
	return JWTConfig{JWKSFile: path, Issuer: testIssuer, Audience: []string{testAudience}}
}

// clock is a settable clock for the verifier.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
