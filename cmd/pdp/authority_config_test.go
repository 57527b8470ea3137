package main

import (
	"errors"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/jwtverify"
	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// TestActorTokensConfig: auth.actor_tokens is off when empty, and once any
// key is set it must be complete and safe.
func TestActorTokensConfig(t *testing.T) {
	t.Parallel()
	full := pdpserver.ActorTokensConfig{Issuer: "https://idp.example/", Audience: []string{"https://pdp.example/"}, JWKSFile: "jwks.json", Algorithms: []string{"ES256"}}
	for _, tc := range []struct {
		name   string
		change func(a *pdpserver.ActorTokensConfig)
		want   error
	}{
		{"complete", func(*pdpserver.ActorTokensConfig) {}, nil},
		{"a JWKS URL", func(a *pdpserver.ActorTokensConfig) { a.JWKSFile, a.JWKSURL = "", "https://idp.example/jwks.json" }, nil},
		{"no issuer", func(a *pdpserver.ActorTokensConfig) { a.Issuer = "" }, jwtverify.ErrConfig},
		{"no audience", func(a *pdpserver.ActorTokensConfig) { a.Audience = nil }, jwtverify.ErrConfig},
		{"no keys", func(a *pdpserver.ActorTokensConfig) { a.JWKSFile = "" }, jwtverify.ErrConfig},
		{"file and URL", func(a *pdpserver.ActorTokensConfig) { a.JWKSURL = "https://idp.example/jwks.json" }, jwtverify.ErrConfig},
		{"a plain http URL", func(a *pdpserver.ActorTokensConfig) { a.JWKSFile, a.JWKSURL = "", "http://idp.example/jwks.json" }, jwtverify.ErrConfig},
		{"HS256", func(a *pdpserver.ActorTokensConfig) { a.Algorithms = []string{"HS256"} }, jwtverify.ErrConfig},
		{"none", func(a *pdpserver.ActorTokensConfig) { a.Algorithms = []string{"none"} }, jwtverify.ErrConfig},
		{"leeway over 5m", func(a *pdpserver.ActorTokensConfig) { a.Leeway = time.Hour }, jwtverify.ErrConfig},
		{"only a leeway", func(a *pdpserver.ActorTokensConfig) { *a = pdpserver.ActorTokensConfig{Leeway: time.Second} }, jwtverify.ErrConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := pdpserver.DefaultConfig()
			c.Auth.ActorTokens = full
			tc.change(&c.Auth.ActorTokens)
			err := c.Validate()
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Validate: %v, want %v", err, tc.want)
			}
		})
	}
	if c := pdpserver.DefaultConfig(); c.Auth.ActorTokens.Enabled() || c.Validate() != nil {
		t.Fatal("actor tokens must be off (and valid) by default")
	}
}

// TestActorTokensFromTheEnvironment: the section's keys have environment
// variables, lists separated by commas.
func TestActorTokensFromTheEnvironment(t *testing.T) {
	c, err := load(t, "", map[string]string{
		"PDP_AUTH_ACTOR_TOKENS_ISSUER":     "https://idp.example/",
		"PDP_AUTH_ACTOR_TOKENS_AUDIENCE":   "https://pdp.example/,pdp",
		"PDP_AUTH_ACTOR_TOKENS_JWKS_FILE":  "jwks.json",
		"PDP_AUTH_ACTOR_TOKENS_ALGORITHMS": "ES256",
		"PDP_AUTH_ACTOR_TOKENS_LEEWAY":     "10s",
	})
	if err != nil {
		t.Fatal(err)
	}
	a := c.Auth.ActorTokens
	if a.Issuer != "https://idp.example/" || len(a.Audience) != 2 || a.Leeway != 10*time.Second || c.Validate() != nil {
		t.Fatalf("%+v: %v", a, c.Validate())
	}
}
