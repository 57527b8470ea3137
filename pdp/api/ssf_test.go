package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// transmitterFake is the PDP's transmitter at the edge of the API: an
// issuer and one public key.
type transmitterFake struct{ key jose.JSONWebKey }

func (f transmitterFake) Issuer() string { return "https://pdp.example/" }
func (f transmitterFake) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{f.key}}
}

// TestTransmitterRoutes: the SSF configuration names the issuer, the
// JWKS under the PDP's public URL and push delivery; the JWKS serves the
// public key; without a transmitter neither route exists.
func TestTransmitterRoutes(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	tests := []struct {
		name      string
		tx        Transmitter
		publicURL string
		path      string
		status    int
		check     func(t *testing.T, body map[string]any)
	}{
		{"configuration", transmitterFake{pub}, "https://pdp.example", SSFConfigurationPath, http.StatusOK, func(t *testing.T, b map[string]any) {
			if b["issuer"] != "https://pdp.example/" || b["jwks_uri"] != "https://pdp.example/.well-known/ssf-jwks.json" || b["spec_version"] != "1_0" {
				t.Errorf("%v", b)
			}
			if m, _ := b["delivery_methods_supported"].([]any); len(m) != 1 || m[0] != "urn:ietf:rfc:8935" {
				t.Errorf("delivery methods %v", b["delivery_methods_supported"])
			}
		}},
		{"jwks", transmitterFake{pub}, "", SSFJWKSPath, http.StatusOK, func(t *testing.T, b map[string]any) {
			keys, _ := b["keys"].([]any)
			if len(keys) != 1 || keys[0].(map[string]any)["kid"] != "k1" || keys[0].(map[string]any)["d"] != nil {
				t.Errorf("%v", b)
			}
		}},
		{"no transmitter: no configuration", nil, "", SSFConfigurationPath, http.StatusNotFound, nil},
		{"no transmitter: no jwks", nil, "", SSFJWKSPath, http.StatusNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := New(Config{PublicURL: tt.publicURL}, Deps{Decider: &fakeDecider{}, Policies: loadedPolicies(), Registry: prometheus.NewRegistry(), Transmitter: tt.tx})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(checkedByContract(t, srv.Handler()))
			defer hs.Close()
			res, err := http.Get(hs.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("%d, want %d", res.StatusCode, tt.status)
			}
			if tt.check != nil {
				var b map[string]any
				if err := json.NewDecoder(res.Body).Decode(&b); err != nil {
					t.Fatal(err)
				}
				tt.check(t, b)
			}
		})
	}
}
