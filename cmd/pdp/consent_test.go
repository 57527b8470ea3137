package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/ciampdp/pdp/pdp/consent"
)

// The consent rows of the Northbank story over HTTP, on the file ledger
// and on PostgreSQL: the same behaviour suite.
func TestNorthbankConsent(t *testing.T) {
	t.Run("file", func(t *testing.T) { consentScenario(t) })
	t.Run("postgres", func(t *testing.T) {
		uri := testDatabase(t)
		t.Setenv("PDP_RELATIONS_ENGINE", "postgres")
		t.Setenv("PDP_RELATIONS_POSTGRES_URI", uri)
		t.Setenv("PDP_DELEGATIONS_ENGINE", "postgres")
		t.Setenv("PDP_DELEGATIONS_POSTGRES_URI", uri)
		t.Setenv("PDP_CONSENT_ENGINE", "postgres")
		t.Setenv("PDP_CONSENT_POSTGRES_URI", uri)
		consentScenario(t)
	})
}

const (
	userAlice    = `{"type":"user","id":"alice"}`
	accAlice     = `{"type":"account","id":"acc-alice"}`
	marketingHub = `{"type":"application","id":"marketing-hub"}`
)

func user(id string) string { return `{"type":"user","id":"` + id + `"}` }

func consentScenario(t *testing.T) {
	s := startNorthbank(t)
	check := func(t *testing.T, d nbDecision, allowed bool, reasons ...string) {
		t.Helper()
		if reasons == nil {
			reasons = []string{}
		}
		if d.Decision != allowed || !slices.Equal(d.Context.Reasons, reasons) {
			t.Fatalf("got %v %v, want %v %v", d.Decision, d.Context.Reasons, allowed, reasons)
		}
	}
	write := func(t *testing.T, app, path, body string, want int) map[string]any {
		t.Helper()
		code, data := s.do(t, http.MethodPost, "/v1/consents/"+path, body, demoKey(app)...)
		if code != want {
			t.Fatalf("%s: %d %s, want %d", path, code, data, want)
		}
		var m map[string]any
		_ = json.Unmarshal(data, &m)
		return m
	}
	advice := `{"purpose":"financial_advice"}`

	t.Run("gina views alice's portfolio until alice withdraws", func(t *testing.T) {
		check(t, s.nbAsk(t, "advisor-portal", user("gina"), "view_portfolio", accAlice, advice), true)
		check(t, s.nbAsk(t, "marketing-hub", user("gina"), "view_portfolio", accAlice, advice), false, "purpose_not_allowed")
		ans := write(t, "advisor-portal", "withdraw", `{"subject":`+userAlice+`,"purpose":"financial_advice","reason":"no more advice"}`, http.StatusOK)
		if pos, _ := ans["position"].(float64); pos <= 0 {
			t.Fatalf("withdraw answered no position: %v", ans)
		}
		check(t, s.nbAsk(t, "advisor-portal", user("gina"), "view_portfolio", accAlice, advice), false, "consent_withdrawn")
	})
	t.Run("marketing: carol on dave's grant, heidi dormant, ivan until he opts out", func(t *testing.T) {
		mk := `{"purpose":"marketing"}`
		check(t, s.nbAsk(t, "marketing-hub", marketingHub, "send_marketing", user("carol"), mk), true)
		check(t, s.nbAsk(t, "marketing-hub", marketingHub, "send_marketing", user("heidi"), mk), false, "revalidation_required")
		check(t, s.nbAsk(t, "marketing-hub", marketingHub, "send_marketing", user("ivan"), mk), true)
		write(t, "marketing-hub", "refuse", `{"subject":`+user("ivan")+`,"purpose":"marketing","jurisdiction":"US-CA","channel":"email"}`, http.StatusCreated)
		check(t, s.nbAsk(t, "marketing-hub", marketingHub, "send_marketing", user("ivan"), mk), false, "consent_withdrawn")
	})
	t.Run("budget-app: alice's grant holds, judy's expired", func(t *testing.T) {
		ais := `{"purpose":"account_information_sharing"}`
		check(t, s.nbAsk(t, "budget-app", userAlice, "share_account_information", accAlice, ais), true)
		check(t, s.nbAsk(t, "budget-app", user("judy"), "share_account_information", `{"type":"account","id":"acc-judy"}`, ais), false, "consent_expired")
	})
	t.Run("a grant, its signed receipt and the history", func(t *testing.T) {
		give := `{"subject":` + user("judy") + `,"purpose":"account_information_sharing","jurisdiction":"DE",
			"notice":{"uri":"https://budget.example/consent","version":3,"language":"de"},"channel":"web"}`
		ans := write(t, "budget-app", "give", give, http.StatusCreated)
		jws, _ := ans["receipt"].(string)
		code, data := s.do(t, http.MethodGet, "/v1/consents/receipt-key", "", demoKey("budget-app")...)
		var jwk map[string]string
		if code != http.StatusOK || json.Unmarshal(data, &jwk) != nil {
			t.Fatalf("receipt key: %d %s", code, data)
		}
		pub, err := base64.RawURLEncoding.DecodeString(jwk["x"])
		if err != nil {
			t.Fatal(err)
		}
		claims, err := consent.VerifyReceipt(ed25519.PublicKey(pub), jws)
		if err != nil {
			t.Fatalf("the receipt does not verify: %v", err)
		}
		if claims.PIIPrincipalID != "user:judy" {
			t.Fatalf("receipt names %q", claims.PIIPrincipalID)
		}
		check(t, s.nbAsk(t, "budget-app", user("judy"), "share_account_information", `{"type":"account","id":"acc-judy"}`, `{"purpose":"account_information_sharing"}`), true)
		code, data = s.do(t, http.MethodGet, "/v1/consents/subjects/user:judy/history", "", demoKey("budget-app")...)
		if code != http.StatusOK || strings.Count(string(data), `"type":"given"`) != 2 {
			t.Fatalf("history: %d %s", code, data)
		}
	})
	t.Run("bad input is refused and writes nothing", func(t *testing.T) {
		write(t, "budget-app", "give", `{"subject":`+user("judy")+`,"purpose":"telepathy","jurisdiction":"DE","notice":{"uri":"u","version":1}}`, http.StatusUnprocessableEntity)
		write(t, "budget-app", "give", `{"subject":`+user("judy")+`,"purpose":"account_information_sharing","jurisdiction":"DE",
			"notice":{"uri":"u","version":1},"expires":"2041-01-01T00:00:00Z"}`, http.StatusUnprocessableEntity)
		write(t, "budget-app", "give", `{"subject":`+user("judy")+`,"purpose":"marketing","jurisdiction":"DE","notice":{"uri":"u","version":1}}`, http.StatusForbidden)
		write(t, "marketing-hub", "give", `{"subject":`+user("carol")+`,"actor":`+user("mallory")+`,"purpose":"marketing","jurisdiction":"DE","notice":{"uri":"u","version":3}}`, http.StatusUnprocessableEntity)
		write(t, "budget-app", "give", `{"subject":`, http.StatusBadRequest)
	})
}

// TestConsentWithdrawalSurvivesSIGKILL kills the real binary right after a
// withdrawal answered, restarts it on the same files, and finds the
// withdrawal in force.
func TestConsentWithdrawalSurvivesSIGKILL(t *testing.T) {
	bin := buildPDP(t)
	data := t.TempDir()
	env := append(os.Environ(),
		"PDP_POLICY_DIR="+northbank,
		"PDP_RELATIONS_BOOTSTRAP="+filepath.Join(northbank, "relationships.txt"),
		"PDP_DELEGATIONS_SEED="+filepath.Join(northbank, "delegations.json"),
		"PDP_DELEGATIONS_PATH="+filepath.Join(data, "delegations.jsonl"),
		"PDP_CONSENT_SEED="+filepath.Join(northbank, "consents.json"),
		"PDP_CONSENT_PATH="+filepath.Join(data, "consent.jsonl"),
		"PDP_LOG_FORMAT=json",
	)
	start := func() (*exec.Cmd, *server) {
		cmd, url := startBinary(t, bin, env, "serve", "--config", filepath.Join(northbank, "pdp.yaml"), "--addr", "127.0.0.1:0")
		return cmd, &server{URL: url}
	}
	advice := `{"purpose":"financial_advice"}`
	cmd, s := start()
	if d := s.nbAsk(t, "advisor-portal", user("gina"), "view_portfolio", accAlice, advice); !d.Decision {
		t.Fatalf("before the withdrawal: %v", d.Context.Reasons)
	}
	code, body := s.do(t, http.MethodPost, "/v1/consents/withdraw", `{"subject":`+userAlice+`,"purpose":"financial_advice"}`, demoKey("advisor-portal")...)
	if code != http.StatusOK {
		t.Fatalf("withdraw: %d %s", code, body)
	}
	// The answer is in: kill at once, no chance to flush anything.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	_, s = start()
	d := s.nbAsk(t, "advisor-portal", user("gina"), "view_portfolio", accAlice, advice)
	if d.Decision || !slices.Equal(d.Context.Reasons, []string{"consent_withdrawn"}) {
		t.Fatalf("after SIGKILL and restart: %v %v, want the withdrawal in force", d.Decision, d.Context.Reasons)
	}
}

// TestConsentCLI gives, withdraws, reads and verifies through `pdp consent`.
func TestConsentCLI(t *testing.T) {
	s := startNorthbank(t)
	t.Setenv("PDP_API_KEY", "demo-key-marketing-hub")
	cli := func(stdin string, args ...string) (int, string, string) {
		var out, errOut strings.Builder
		code := run(context.Background(), append([]string{"consent", "--server", s.URL}, args...), strings.NewReader(stdin), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	give := `{"subject":{"type":"user","id":"alice"},"purpose":"marketing","jurisdiction":"DE",
		"notice":{"uri":"https://northbank.example/privacy/marketing","version":3,"language":"de"},"channel":"app"}`
	code, out, errOut := cli(give, "give", "-")
	if code != exitOK || !strings.Contains(out, `"receipt"`) {
		t.Fatalf("give: %d\n%s\n%s", code, out, errOut)
	}
	if code, vout, errOut := cli(out, "verify", "-"); code != exitOK || !strings.Contains(vout, "receipt valid") || !strings.Contains(vout, `"piiPrincipalId": "user:alice"`) {
		t.Fatalf("verify: %d\n%s\n%s", code, vout, errOut)
	}
	// A tampered receipt does not verify.
	var ans struct {
		Receipt string `json:"receipt"`
	}
	_ = json.Unmarshal([]byte(out), &ans)
	parts := strings.Split(ans.Receipt, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), "user:alice", "user:mallory", 1)))
	if code, _, errOut := cli(strings.Join(parts, "."), "verify", "-"); code != exitFailure || !strings.Contains(errOut, "NOT valid") {
		t.Fatalf("tampered receipt: %d %s", code, errOut)
	}
	if code, out, errOut = cli(`{"subject":{"type":"user","id":"alice"},"purpose":"marketing"}`, "withdraw", "-"); code != exitOK || !strings.Contains(out, `"withdrawn"`) {
		t.Fatalf("withdraw: %d\n%s\n%s", code, out, errOut)
	}
	if code, out, _ = cli("", "history", "user:alice"); code != exitOK || !strings.Contains(out, `"withdrawn"`) || !strings.Contains(out, `"given"`) {
		t.Fatalf("history: %d\n%s", code, out)
	}
	if code, _, errOut = cli(`{"subject":{"type":"user","id":"alice"},"purpose":"telepathy","jurisdiction":"DE","notice":{"uri":"u","version":1}}`, "give", "-"); code != exitFailure || !strings.Contains(errOut, "HTTP 422") {
		t.Fatalf("unknown purpose: %d %s", code, errOut)
	}
}
