package main

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/actorproof"
	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// actorTokensYAML is a configuration with two applications and actor
// tokens, plus extra lines under auth.actor_tokens.
func actorTokensYAML(extra string) string {
	return `auth:
  api_keys:
    - {application: budget-app, sha256: d95b9296482204edbd810b66811a16bd1e353890fddf68588211e814a7cccdaf}
    - {application: MobileBanking, sha256: 6819f882ee9c3ca0278764b5e5c0f824f14f186d19754f0ba511c90c424511d0}
  actor_tokens:
    issuer: https://idp.example/
    audience: [https://pdp.example/]
    jwks_file: jwks.json
` + extra
}

// TestActorTokenBindingConfig: auth.actor_tokens.clients maps the
// applications of auth.api_keys (whatever the case the loader folds their
// names to) to client ids, each client one application's; single_use is
// on by default and bounded.
func TestActorTokenBindingConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		extra   string
		env     map[string]string
		want    map[string][]string
		wantErr string
	}{
		{"unbound", "", nil, nil, ""},
		{"YAML", "    clients:\n      budget-app: [budget-app-web, budget-app-ios]\n      MobileBanking: [mb-ios]\n", nil,
			map[string][]string{"budget-app": {"budget-app-web", "budget-app-ios"}, "MobileBanking": {"mb-ios"}}, ""},
		{"environment", "", map[string]string{"PDP_AUTH_ACTOR_TOKENS_CLIENTS": "budget-app=budget-app-web,budget-app=budget-app-ios mobilebanking=mb-ios"},
			map[string][]string{"budget-app": {"budget-app-web", "budget-app-ios"}, "MobileBanking": {"mb-ios"}}, ""},
		{"an unknown application", "    clients:\n      budget-ap: [budget-app-web]\n", nil, nil, `"budget-ap" is not an application of auth.api_keys`},
		{"a client of two applications", "    clients:\n      budget-app: [shared]\n      MobileBanking: [shared]\n", nil, nil, `the client id "shared" is listed for`},
		{"no client id", "    clients:\n      budget-app: []\n", nil, nil, "list at least one client id"},
		{"an empty client id", "    clients:\n      budget-app: [\"\"]\n", nil, nil, "an empty client id"},
		{"a malformed environment", "", map[string]string{"PDP_AUTH_ACTOR_TOKENS_CLIENTS": "budget-app"}, nil, "want name=value pairs"},
		{"no capacity", "    single_use_capacity: 0\n", nil, nil, "single_use_capacity 0"},
		{"no capacity, reusable", "    single_use: false\n    single_use_capacity: 0\n", nil, nil, ""}, // default off because this case checks that a capacity is needed only with single use on
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, actorTokensYAML(tc.extra), tc.env)
			if err == nil {
				err = c.Validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Auth.ActorTokenClients()
			if err != nil || !maps.EqualFunc(got, tc.want, slices.Equal) {
				t.Fatalf("clients %v (%v), want %v", got, err, tc.want)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		c, err := load(t, actorTokensYAML(""), nil)
		if err != nil {
			t.Fatal(err)
		}
		if a := c.Auth.ActorTokens; !a.SingleUse || a.SingleUseCapacity != actorproof.DefaultMemoryCapacity {
			t.Fatalf("single_use %v, capacity %d: want on, %d", a.SingleUse, a.SingleUseCapacity, actorproof.DefaultMemoryCapacity)
		}
		if pdpserver.DefaultConfig().Auth.ActorTokens.Enabled() {
			t.Fatal("the defaults turn actor tokens on")
		}
	})
	t.Run("clients alone turn actor proof on", func(t *testing.T) {
		c := pdpserver.DefaultConfig()
		c.Auth.ActorTokens.Clients = map[string][]string{"local": {"x"}}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "auth.actor_tokens: invalid JWT verification config") {
			t.Fatalf("%v, want the incomplete section refused", err)
		}
	})
	t.Run("two applications differing only in case", func(t *testing.T) {
		a := pdpserver.AuthConfig{APIKeys: []pdpserver.APIKey{{Application: "App"}, {Application: "app"}},
			ActorTokens: pdpserver.ActorTokensConfig{Clients: map[string][]string{"app": {"c"}}}}
		if _, err := a.ActorTokenClients(); !errors.Is(err, pdpserver.ErrActorTokens) {
			t.Fatalf("%v, want ErrActorTokens", err)
		}
	})
}

// FuzzParseLists: the environment's name=value lists never panic, and
// what they decode re-encodes to the same pairs.
func FuzzParseLists(f *testing.F) {
	for _, s := range []string{"a=b", "a=b,a=c d=e", "a", "=b", "a=", "a==b", ",,", "a=b\tc=d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseLists(s)
		if err != nil {
			return
		}
		var pairs []string
		for k, vs := range m {
			if k == "" || len(vs) == 0 {
				t.Fatalf("%q: empty name or list in %v", s, m)
			}
			for _, v := range vs {
				if v == "" || strings.ContainsAny(k+v, ", \t\n") {
					t.Fatalf("%q: %q=%q", s, k, v)
				}
				pairs = append(pairs, k+"="+v)
			}
		}
		again, err := parseLists(strings.Join(pairs, ","))
		if err != nil || !maps.EqualFunc(again, m, func(a, b []string) bool { return slices.Equal(a, b) }) {
			t.Fatalf("%q: %v re-encodes to %v (%v)", s, m, again, err)
		}
	})
}
