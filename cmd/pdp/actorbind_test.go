package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Actor tokens bound to the calling application and to one change, end to
// end over HTTP against the Northbank example with actor proof
// (pdp-actor-tokens.yaml: auth.actor_tokens.clients and single_use).

// nbActorClients is one client id of each application in
// pdp-actor-tokens.yaml (auth.actor_tokens.clients).
var nbActorClients = map[string]string{
	"mobile-banking": "mobile-banking-ios",
	"advisor-portal": "advisor-portal-web",
	"marketing-hub":  "marketing-hub-web",
	"budget-app":     "budget-app-web",
	"backoffice":     "backoffice-web",
}

// TestActorTokensBoundToTheApplication: a token alice's identity provider
// issued to the budget app proves nothing when another application sends
// it, whatever the change; it still proves alice's change through the
// budget app, once.
func TestActorTokensBoundToTheApplication(t *testing.T) {
	s := startNorthbankActorTokens(t)
	gina := func() nbDecision {
		return s.nbAsk(t, "advisor-portal", user("gina"), "view_portfolio", `{"type":"account","id":"acc-alice"}`, `{"purpose":"financial_advice"}`)
	}
	budgets := actorToken(t, "budget-app", "alice", nil)
	for _, tc := range []struct{ name, app, path, body string }{
		{"advisor-portal withdraws alice's advice consent", "advisor-portal", "/v1/consents/withdraw", `{"subject":{"type":"user","id":"alice"},"purpose":"financial_advice"}`},
		{"advisor-portal refuses for alice", "advisor-portal", "/v1/consents/refuse", `{"subject":{"type":"user","id":"alice"},"purpose":"financial_advice","jurisdiction":"DE"}`},
		{"advisor-portal renews alice's grant", "advisor-portal", "/v1/consents/renew", `{"subject":{"type":"user","id":"alice"},"grant_id":"grant-alice-advice","notice":{"uri":"u","version":1}}`},
		{"marketing-hub gives for alice", "marketing-hub", "/v1/consents/give", `{"subject":{"type":"user","id":"alice"},"purpose":"marketing","jurisdiction":"DE","notice":{"uri":"u","version":3}}`},
		{"mobile-banking revokes bob's power of attorney", "mobile-banking", "/v1/delegations/poa-alice-bob/revoke", actorBody("alice")},
		{"mobile-banking suspends it", "mobile-banking", "/v1/delegations/poa-alice-bob/suspend", actorBody("alice")},
		{"mobile-banking offers one to mallory", "mobile-banking", "/v1/delegations", `{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"mallory"},
			"basis":"power_of_attorney","source":"self_declared","scope":["view_statements"],"resources":[{"type":"account","id":"acc-alice"}],"valid_until":"2041-01-01T00:00:00Z"}`},
		{"mobile-banking re-confirms victor's power of attorney", "mobile-banking", "/v1/dormancy/delegations/poa-alice-victor/reconfirm", actorBody("alice")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := s.admin(t, tc.app, http.MethodPost, tc.path, tc.body, budgets)
			if a.Code != http.StatusUnauthorized || a.Reason != "actor_unproven" || !strings.Contains(a.Error, `issued to the client "budget-app-web"`) {
				t.Fatalf("%d %s, want 401 actor_unproven naming the client", a.Code, a.Body)
			}
		})
	}
	if st := s.delegationStatus(t, "poa-alice-bob"); st != "active" {
		t.Fatalf("poa-alice-bob is %s after refused changes", st)
	}
	if d := gina(); !d.Decision {
		t.Fatalf("gina denied after refused consent changes: %v", d.Context.Reasons)
	}
	t.Run("through the budget app, once", func(t *testing.T) {
		// A fresh grant: the seeded one lasts 180 days (PSD2) and expires.
		fresh := `{"subject":{"type":"user","id":"alice"},"purpose":"account_information_sharing","jurisdiction":"DE","notice":{"uri":"u","version":1}}`
		if a := s.admin(t, "budget-app", http.MethodPost, "/v1/consents/give", fresh, actorToken(t, "budget-app", "alice", nil)); a.Code != http.StatusCreated {
			t.Fatalf("alice grants through the budget app: %d %s", a.Code, a.Body)
		}
		withdraw := `{"subject":{"type":"user","id":"alice"},"purpose":"account_information_sharing"}`
		if a := s.admin(t, "budget-app", http.MethodPost, "/v1/consents/withdraw", withdraw, budgets); a.Code != http.StatusOK {
			t.Fatalf("alice withdraws through the budget app: %d %s", a.Code, a.Body)
		}
		give := `{"subject":{"type":"user","id":"alice"},"purpose":"account_information_sharing","jurisdiction":"DE","notice":{"uri":"u","version":1}}`
		a := s.admin(t, "budget-app", http.MethodPost, "/v1/consents/give", give, budgets)
		if a.Code != http.StatusUnauthorized || a.Reason != "actor_unproven" || !strings.Contains(a.Error, "already used") {
			t.Fatalf("the same token again: %d %s, want 401 actor_unproven, already used", a.Code, a.Body)
		}
		d := s.nbAsk(t, "budget-app", user("alice"), "share_account_information", `{"type":"account","id":"acc-alice"}`, `{"purpose":"account_information_sharing"}`)
		if d.Decision || !slices.Equal(d.Context.Reasons, []string{"consent_withdrawn"}) {
			t.Fatalf("after the withdrawal and a refused grant: %v %v", d.Decision, d.Context.Reasons)
		}
	})
	t.Run("tokens without a client or a jti", func(t *testing.T) {
		for name, claims := range map[string]map[string]any{
			"no azp":                      {"azp": nil},
			"no jti":                      {"jti": nil},
			"client_id of another client": {"azp": nil, "client_id": "budget-app-web"},
		} {
			a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/poa-alice-bob/suspend", actorBody("alice"), actorToken(t, "mobile-banking", "alice", claims))
			if a.Code != http.StatusUnauthorized || a.Reason != "actor_unproven" {
				t.Fatalf("%s: %d %s, want 401 actor_unproven", name, a.Code, a.Body)
			}
		}
		if st := s.delegationStatus(t, "poa-alice-bob"); st != "active" {
			t.Fatalf("poa-alice-bob is %s", st)
		}
	})
}

// TestActorTokensOneChangeEach: a token proves one change — through the
// API, the pdp delegation command and a token minted by the example's
// mint-token as the walkthrough does — and a fresh one proves the next.
func TestActorTokensOneChangeEach(t *testing.T) {
	s := startNorthbankActorTokens(t)
	tok := actorToken(t, "mobile-banking", "peggy", nil)
	if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/poa-alice-peggy/accept", actorBody("peggy"), tok); a.Code != http.StatusOK {
		t.Fatalf("peggy accepts: %d %s", a.Code, a.Body)
	}
	a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/poa-alice-peggy/renounce", actorBody("peggy"), tok)
	if a.Code != http.StatusUnauthorized || a.Reason != "actor_unproven" || !strings.Contains(a.Error, "already used") {
		t.Fatalf("renounce with the accept's token: %d %s", a.Code, a.Body)
	}
	if st := s.delegationStatus(t, "poa-alice-peggy"); st != "active" {
		t.Fatalf("poa-alice-peggy is %s", st)
	}

	t.Run("pdp delegation with PDP_ACTOR_TOKEN", func(t *testing.T) {
		t.Setenv("PDP_API_KEY", "demo-key-mobile-banking")
		t.Setenv("PDP_ACTOR_TOKEN", actorToken(t, "mobile-banking", "alice", nil))
		cli := func(op string) (int, string) {
			var out, errOut strings.Builder
			code := run(context.Background(), []string{"delegation", "--server", s.URL, op, "poa-alice-bob", "--actor", "user:alice"},
				strings.NewReader(""), &out, &errOut)
			return code, out.String() + errOut.String()
		}
		if code, out := cli("suspend"); code != exitOK || !strings.Contains(out, `"suspended"`) {
			t.Fatalf("suspend: %d %s", code, out)
		}
		if code, out := cli("resume"); code == exitOK || !strings.Contains(out, "401") || !strings.Contains(out, "already used") {
			t.Fatalf("resume with the same token: %d %s", code, out)
		}
		t.Setenv("PDP_ACTOR_TOKEN", actorToken(t, "mobile-banking", "alice", nil))
		if code, out := cli("resume"); code != exitOK || !strings.Contains(out, `"active"`) {
			t.Fatalf("resume with a fresh token: %d %s", code, out)
		}
	})

	t.Run("mint-token, as the walkthrough", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "mint-token")
		if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(nbSidecarDir, "mint-token")).CombinedOutput(); err != nil {
			t.Fatalf("go build mint-token: %v\n%s", err, out)
		}
		mint := func(args ...string) string {
			t.Helper()
			cmd := exec.Command(bin, append([]string{"-key", filepath.Join(nbSidecarDir, "demo-only-signing-key.json"), "-aud", "https://pdp.northbank.example/"}, args...)...)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("mint-token %v: %v", args, err)
			}
			return strings.TrimSpace(string(out))
		}
		withdraw := `{"subject":{"type":"user","id":"alice"},"purpose":"financial_advice"}`
		for _, tc := range []struct {
			name  string
			token string
			code  int
		}{
			{"the budget app's client", mint("-sub", "alice", "-azp", "budget-app-web"), http.StatusUnauthorized},
			{"no jti", mint("-sub", "alice", "-azp", "advisor-portal-web", "-no-jti"), http.StatusUnauthorized},
			{"the advisor portal's client", mint("-sub", "alice", "-azp", "advisor-portal-web"), http.StatusOK},
		} {
			if a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/consents/withdraw", withdraw, tc.token); a.Code != tc.code {
				t.Fatalf("%s: %d %s, want %d", tc.name, a.Code, a.Body, tc.code)
			}
		}
	})
}

// TestActorTokenClientsUnknownApplication: the PDP refuses to start when
// auth.actor_tokens.clients names an application it has no key for.
func TestActorTokenClientsUnknownApplication(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(northbank, "pdp-actor-tokens.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := replaceOnce(t, string(data), "budget-app: [budget-app-web]", "budget-ap: [budget-app-web]")
	path := filepath.Join(t.TempDir(), "pdp.yaml")
	writeFile(t, path, cfg)
	var out, errOut strings.Builder
	code := run(context.Background(), []string{"serve", "--config", path, "--addr", "127.0.0.1:0"}, strings.NewReader(""), &out, &errOut)
	if code == exitOK || !strings.Contains(errOut.String(), `"budget-ap" is not an application of auth.api_keys`) {
		t.Fatalf("serve: %d\n%s%s", code, out.String(), errOut.String())
	}
}

// TestActorTokensSingleUseAcrossReplicas: with the delegation and consent
// records on PostgreSQL, a token's one use is remembered in that database,
// so a second replica refuses it too.
func TestActorTokensSingleUseAcrossReplicas(t *testing.T) {
	uri := testDatabase(t)
	for _, k := range []string{"RELATIONS", "DELEGATIONS", "CONSENT"} {
		t.Setenv("PDP_"+k+"_ENGINE", "postgres")
		t.Setenv("PDP_"+k+"_POSTGRES_URL", uri)
	}
	a, b := startNorthbankActorTokens(t), startNorthbankActorTokens(t)
	tok := actorToken(t, "mobile-banking", "alice", nil)
	if r := a.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/poa-alice-bob/suspend", actorBody("alice"), tok); r.Code != http.StatusOK {
		t.Fatalf("suspend on replica a: %d %s", r.Code, r.Body)
	}
	r := b.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/poa-alice-bob/resume", actorBody("alice"), tok)
	if r.Code != http.StatusUnauthorized || r.Reason != "actor_unproven" || !strings.Contains(r.Error, "already used") {
		t.Fatalf("the same token on replica b: %d %s, want 401 actor_unproven", r.Code, r.Body)
	}
	if st := b.delegationStatus(t, "poa-alice-bob"); st != "suspended" {
		t.Fatalf("poa-alice-bob is %s", st)
	}
	if r := b.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/poa-alice-bob/resume", actorBody("alice"), actorToken(t, "mobile-banking", "alice", nil)); r.Code != http.StatusOK {
		t.Fatalf("a fresh token on replica b: %d %s", r.Code, r.Body)
	}
}

// TestActorTokenUsesBounded: one process remembers at most
// auth.actor_tokens.single_use_capacity unexpired uses; beyond, a change
// is refused with 503 actor_replay_unavailable (fail closed: nothing
// changes), and counted.
func TestActorTokenUsesBounded(t *testing.T) {
	t.Setenv("PDP_AUTH_ACTOR_TOKENS_SINGLE_USE_CAPACITY", "1")
	s := startNorthbankActorTokens(t)
	if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/poa-alice-peggy/accept", actorBody("peggy"), actorToken(t, "mobile-banking", "peggy", nil)); a.Code != http.StatusOK {
		t.Fatalf("the first change: %d %s", a.Code, a.Body)
	}
	a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/poa-alice-bob/suspend", actorBody("alice"), actorToken(t, "mobile-banking", "alice", nil))
	if a.Code != http.StatusServiceUnavailable || a.Reason != "actor_replay_unavailable" {
		t.Fatalf("a second token with the store full: %d %s, want 503 actor_replay_unavailable", a.Code, a.Body)
	}
	if st := s.delegationStatus(t, "poa-alice-bob"); st != "active" {
		t.Fatalf("poa-alice-bob is %s", st)
	}
	code, data := s.do(t, http.MethodGet, "/metrics", "")
	if code != http.StatusOK || !strings.Contains(string(data), "pdp_actor_token_uses_remembered 1") || !strings.Contains(string(data), "pdp_actor_token_uses_full_total 1") {
		t.Fatalf("metrics: %d\n%s", code, data)
	}
}
