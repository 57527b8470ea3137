package signals

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	testIss = "https://risk.northbank.example/"
	testAud = "https://pdp.northbank.example/"
	idpIss  = "https://idp.northbank.example/"
)

var testNow = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func newKey(t testing.TB, kid string) jose.JSONWebKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: "ES256", Use: "sig"}
}

func testVerifier(t testing.TB, key jose.JSONWebKey) *Verifier {
	t.Helper()
	v, err := NewVerifier([]Transmitter{{Issuer: testIss, Audience: []string{testAud}, Keys: StaticKeys{key.Public()}, Algorithms: []string{"ES256"}}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func issSub(sub string) map[string]any {
	return map[string]any{"format": "iss_sub", "iss": idpIss, "sub": sub}
}

// setClaims are the claims of a SET with one event of type (short name).
func setClaims(jti, typ string, subject map[string]any, iat time.Time) map[string]any {
	uri, ok := TypeURI(typ)
	if !ok {
		uri = typ
	}
	return map[string]any{
		"iss": testIss, "aud": testAud, "iat": iat.Unix(), "jti": jti,
		"sub_id": subject,
		"events": map[string]any{uri: map[string]any{"event_timestamp": iat.Unix()}},
	}
}

func sign(t testing.TB, key jose.JSONWebKey, claims any) string {
	t.Helper()
	s, err := Sign(key, claims)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
