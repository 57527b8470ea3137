package gateway

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"
)

func validConfig() Config {
	return Config{
		Subject: SubjectConfig{Header: "X-User-Id"},
		Routes: []RouteConfig{{
			Name: "payments", Methods: []string{"POST"}, Path: "/accounts/{id}/payments", Action: "make_payment",
			Resource: ResourceConfig{Type: "account", ID: "{id}"},
			Context:  map[string]string{"amount": "header:X-Amount|number", "purpose": "account_servicing"},
		}},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		change   func(c *Config)
		sentinel error
		want     string // substring of the message
	}{
		{"valid", func(c *Config) {}, nil, ""},
		{"no routes", func(c *Config) { c.Routes = nil }, ErrConfig, "no routes"},
		{"unmatched", func(c *Config) { c.Unmatched = "maybe" }, ErrConfig, `unmatched "maybe"`},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, ErrConfig, "timeout"},
		{"nginx path", func(c *Config) { c.NginxPath = "authz" }, ErrConfig, "nginx_path"},
		{"nginx under envoy", func(c *Config) { c.NginxPath = "/authz/envoy/nginx" }, ErrConfig, "must not be under envoy_prefix"},
		{"subject header name", func(c *Config) { c.SubjectHeader = "X Subject" }, ErrConfig, "subject_header"},
		{"no subject source", func(c *Config) { c.Subject.Header = "" }, ErrSubject, "set jwt.jwks_file"},
		{"both subject sources", func(c *Config) { c.Subject.JWT = testJWT("/x.json") }, ErrSubject, "not both"},
		{"realm with a quote", func(c *Config) { c.Subject.Realm = `a"b` }, ErrSubject, "realm"},
		{"jwt without issuer", func(c *Config) { c.Subject = SubjectConfig{JWT: JWTConfig{JWKSFile: "/x", Audience: []string{"a"}}} }, ErrJWT, "issuer is required"},
		{"jwt without audience", func(c *Config) { c.Subject = SubjectConfig{JWT: JWTConfig{JWKSFile: "/x", Issuer: "i"}} }, ErrJWT, "audience is required"},
		{"jwt http url", func(c *Config) {
			c.Subject = SubjectConfig{JWT: JWTConfig{JWKSURL: "http://idp/jwks", Issuer: "i", Audience: []string{"a"}}}
		}, ErrJWT, "https"},
		{"jwt hmac", func(c *Config) {
			c.Subject = SubjectConfig{JWT: JWTConfig{JWKSFile: "/x", Issuer: "i", Audience: []string{"a"}, Algorithms: []string{"HS256"}}}
		}, ErrJWT, `"HS256" is not accepted`},
		{"jwt none", func(c *Config) {
			c.Subject = SubjectConfig{JWT: JWTConfig{JWKSFile: "/x", Issuer: "i", Audience: []string{"a"}, Algorithms: []string{"none"}}}
		}, ErrJWT, `"none" is not accepted`},
		{"jwt big leeway", func(c *Config) {
			c.Subject = SubjectConfig{JWT: JWTConfig{JWKSFile: "/x", Issuer: "i", Audience: []string{"a"}, Leeway: time.Hour}}
		}, ErrJWT, "leeway"},
		{"route without methods", func(c *Config) { c.Routes[0].Methods = nil }, ErrRoute, `route 1 "payments": invalid route: methods are required`},
		{"route star and more", func(c *Config) { c.Routes[0].Methods = []string{"*", "GET"} }, ErrRoute, `"*" must be the only method`},
		{"route bad method", func(c *Config) { c.Routes[0].Methods = []string{"GE T"} }, ErrRoute, "not an HTTP method"},
		{"route bad path", func(c *Config) { c.Routes[0].Path = "/accounts/{id" }, ErrRoute, "whole segment"},
		{"route without action", func(c *Config) { c.Routes[0].Action = "" }, ErrRoute, "action is required"},
		{"route without resource type", func(c *Config) { c.Routes[0].Resource.Type = "" }, ErrRoute, "resource.type is required"},
		{"route without resource id", func(c *Config) { c.Routes[0].Resource.ID = "" }, ErrRoute, "resource.id is required"},
		{"route unknown variable", func(c *Config) { c.Routes[0].Resource.ID = "{acct}" }, ErrRoute, `path "/accounts/{id}/payments" has no variable {acct}`},
		{"route unnamed is labelled by path", func(c *Config) { c.Routes[0].Name = ""; c.Routes[0].Resource.ID = "{acct}" }, ErrRoute, "route 1 (POST /accounts/{id}/payments)"},
		{"route bad typed literal", func(c *Config) { c.Routes[0].Context["amount"] = "lots|number" }, ErrRoute, "context.amount"},
		{"route bad header name", func(c *Config) { c.Routes[0].Context["amount"] = "header:X Amount" }, ErrRoute, "not a valid header name"},
		{"route partial variable", func(c *Config) { c.Routes[0].Context["ref"] = "ref-{id}" }, ErrRoute, "whole value"},
		{"route sets on_behalf_of", func(c *Config) { c.Routes[0].Context["on_behalf_of"] = "header:X-For" }, ErrRoute, "context.on_behalf_of cannot be set"},
		{"route sets now", func(c *Config) { c.Routes[0].Context["now"] = "x" }, ErrRoute, "context.now cannot be set"},
		{"duplicate route names", func(c *Config) { c.Routes = append(c.Routes, c.Routes[0]) }, ErrRoute, `route 2 "payments"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			err := c.Validate()
			if tt.sentinel == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("err = %v, want %v", err, tt.sentinel)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestConfigFromViper decodes the README's YAML shape with viper, as the
// sidecar will, and builds a gateway from it.
func TestConfigFromViper(t *testing.T) {
	iss := newIssuer(t, "k1")
	jwks := iss.writeJWKS("", "k1")
	yaml := `
gateway:
  unmatched: deny
  timeout: 750ms
  subject_header: X-Authz-Subject
  subject:
    type: user
    jwt:
      jwks_file: ` + jwks + `
      issuer: https://idp.test/
      audience: [bank-api]
      leeway: 10s
      on_behalf_of_claim: act_for
      min_refresh_interval: 1m
  routes:
    - name: statements
      methods: [GET, HEAD]
      path: /accounts/{id}/statements
      action: view_statements
      resource: {type: account, id: "{id}"}
      context:
        purpose: account_servicing
    - name: payments
      methods: POST
      path: /accounts/{id}/payments
      action: make_payment
      resource:
        type: account
        id: "{id}"
        properties:
          channel: header:X-Channel
      context:
        amount: header:X-Payment-Amount|number
        currency: header:X-Payment-Currency
`
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewBufferString(yaml)); err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := v.UnmarshalKey("gateway", &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if cfg.Timeout != 750*time.Millisecond || cfg.Subject.JWT.Leeway != 10*time.Second ||
		cfg.Subject.JWT.MinRefreshInterval != time.Minute {
		t.Errorf("durations: %v %v %v", cfg.Timeout, cfg.Subject.JWT.Leeway, cfg.Subject.JWT.MinRefreshInterval)
	}
	if len(cfg.Routes) != 2 || cfg.Routes[1].Methods[0] != "POST" || cfg.Routes[1].Resource.Properties["channel"] != "header:X-Channel" ||
		cfg.Routes[1].Context["amount"] != "header:X-Payment-Amount|number" {
		t.Errorf("routes: %+v", cfg.Routes)
	}
	if cfg.Subject.JWT.Audience[0] != "bank-api" || cfg.Subject.JWT.OnBehalfOfClaim != "act_for" {
		t.Errorf("jwt: %+v", cfg.Subject.JWT)
	}
	if _, err := New(cfg, Deps{Evaluator: &fakeEvaluator{}}); err != nil {
		t.Fatalf("New: %v", err)
	}
}

// TestREADMEConfig keeps the README's configuration example valid.
func TestREADMEConfig(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "## Configuration")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in the Configuration section")
	}
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(strings.NewReader(block)); err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := v.UnmarshalKey("gateway", &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("README config: %v", err)
	}
	if len(cfg.Routes) != 3 || cfg.Subject.JWT.JWKSURL == "" {
		t.Errorf("README config decoded to %+v", cfg)
	}
}
