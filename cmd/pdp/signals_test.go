package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ciampdp/pdp/pdp/signals"
)

// The Northbank demo transmitter, from this package's folder.
var (
	nbTransmitterKey  = filepath.Join(northbank, "signals", "demo-only-transmitter-key.json")
	nbTransmitterJWKS = filepath.Join(northbank, "signals", "transmitter-jwks.json")
)

// TestNorthbankSignals runs the risk signal rows of the Northbank story
// over HTTP: on the embedded default (file ledger) and on PostgreSQL.
func TestNorthbankSignals(t *testing.T) {
	t.Run("file", func(t *testing.T) { signalsScenario(t) })
	t.Run("postgres", func(t *testing.T) {
		uri := testDatabase(t)
		for _, k := range []string{"RELATIONS", "DELEGATIONS", "CONSENT"} {
			t.Setenv("PDP_"+k+"_ENGINE", "postgres")
			t.Setenv("PDP_"+k+"_POSTGRES_URL", uri)
		}
		t.Setenv("PDP_SIGNALS_ENGINE", "postgres")
		t.Setenv("PDP_SIGNALS_POSTGRES_URL", uri)
		signalsScenario(t)
	})
}

// startNorthbankSignals serves the example (pdp.yaml carries the signal
// receiver, the demo transmitter's JWKS inline; the signal ledger beside
// the test's consent ledger).
func startNorthbankSignals(t *testing.T) *server {
	t.Helper()
	return startNorthbank(t)
}

// sigDecision is the part of an evaluation answer these tests read.
type sigDecision struct {
	Decision bool `json:"decision"`
	Context  struct {
		DecisionID  string   `json:"decision_id"`
		Reasons     []string `json:"reasons"`
		Obligations []string `json:"obligations"`
		Message     string   `json:"message"`
	} `json:"context"`
}

func (s *server) sigAsk(t *testing.T, subject, action, resource, ctx string) sigDecision {
	t.Helper()
	body := `{"subject":` + user(subject) + `,"action":{"name":"` + action + `"},"resource":{"type":"account","id":"` + resource + `"},"context":` + ctx + `}`
	code, data := s.do(t, http.MethodPost, "/access/v1/evaluation", body, demoKey("mobile-banking")...)
	if code != http.StatusOK {
		t.Fatalf("evaluation: %d %s", code, data)
	}
	var d sigDecision
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func wantDecision(t *testing.T, d sigDecision, allowed bool, reasons, obligations []string) {
	t.Helper()
	if reasons == nil {
		reasons = []string{}
	}
	if obligations == nil {
		obligations = []string{}
	}
	if d.Decision != allowed || !slices.Equal(d.Context.Reasons, reasons) || !slices.Equal(d.Context.Obligations, obligations) {
		t.Fatalf("got %v %v %v (%s), want %v %v %v", d.Decision, d.Context.Reasons, d.Context.Obligations, d.Context.Message, allowed, reasons, obligations)
	}
}

// push signs and pushes one SET with `pdp signals push`.
func (s *server) push(t *testing.T, args ...string) {
	t.Helper()
	argv := append([]string{"signals", "push", "--server", s.URL, "--key", nbTransmitterKey}, args...)
	code, out, errOut := pdpRun(argv...)
	if code != 0 || !strings.HasPrefix(out, "accepted: ") {
		t.Fatalf("pdp %s: %d %s%s", strings.Join(argv, " "), code, out, errOut)
	}
}

// explain fetches the auditor's explanation of a decision.
func (s *server) explain(t *testing.T, id string) (words string, replay string) {
	t.Helper()
	code, data := s.do(t, http.MethodGet, "/v1/audit/decisions/"+id, "", "Authorization", "Bearer demo-key-auditor")
	if code != http.StatusOK {
		t.Fatalf("explain %s: %d %s", id, code, data)
	}
	var ex struct {
		Words  []string `json:"explanation"`
		Replay struct {
			Outcome string `json:"outcome"`
		} `json:"replay"`
	}
	if err := json.Unmarshal(data, &ex); err != nil {
		t.Fatal(err)
	}
	return strings.Join(ex.Words, "\n"), ex.Replay.Outcome
}

func signalsScenario(t *testing.T) {
	s := startNorthbankSignals(t)
	pay := forUser("alice", `,"amount":250,"currency":"EUR"`)
	view := forUser("alice", "")

	t.Run("bob's credential compromised: payments denied, statements with step-up, until he changes it", func(t *testing.T) {
		wantDecision(t, s.sigAsk(t, "bob", "make_payment", "acc-alice", pay), true, nil, nil)
		// The change below must come later than the compromise (event
		// times are in seconds).
		s.push(t, "credential-compromise", "bob", "--jti", "nb-compromise-bob", "--event-time", strconv.FormatInt(time.Now().Add(-2*time.Minute).Unix(), 10))
		d := s.sigAsk(t, "bob", "make_payment", "acc-alice", pay)
		wantDecision(t, d, false, []string{"account_compromised"}, nil)
		wantDecision(t, s.sigAsk(t, "bob", "view_statements", "acc-alice", view), true, nil, []string{"step_up_authentication"})
		words, replay := s.explain(t, d.Context.DecisionID)
		for _, w := range []string{"denied (account_compromised)", "https://risk.northbank.example/ reported User::\"bob\" credential-compromise", "SET jti nb-compromise-bob"} {
			if !strings.Contains(words, w) {
				t.Fatalf("the explanation lacks %q:\n%s", w, words)
			}
		}
		if replay != "reproduced" {
			t.Fatalf("replay: %s\n%s", replay, words)
		}
		code, out, errOut := pdpRun("signals", "list", "user:bob", "--server", s.URL)
		if code == 0 {
			t.Fatalf("signals list without the admin key: %d %s", code, out)
		}
		t.Setenv("PDP_API_KEY", "demo-key-backoffice")
		code, out, errOut = pdpRun("signals", "list", "user:bob", "--server", s.URL)
		if code != 0 || !strings.Contains(out, "credential-compromise (account_compromised)") || !strings.Contains(out, "nb-compromise-bob") {
			t.Fatalf("signals list: %d %s%s", code, out, errOut)
		}
		s.push(t, "credential-change", "bob")
		wantDecision(t, s.sigAsk(t, "bob", "make_payment", "acc-alice", pay), true, nil, nil)
		code, out, _ = pdpRun("signals", "list", "user:bob", "--server", s.URL)
		if code != 0 || !strings.Contains(out, "no active signals") {
			t.Fatalf("signals list after the change: %d %s", code, out)
		}
		code, out, _ = pdpRun("signals", "history", "user:bob", "--server", s.URL)
		if code != 0 || !strings.Contains(out, "credential-compromise") || !strings.Contains(out, "credential-change") {
			t.Fatalf("signals history: %d %s", code, out)
		}
	})
	t.Run("alice's session revoked: an older session denied, a fresh login allowed", func(t *testing.T) {
		revoked := time.Now().Add(-time.Minute).Unix()
		s.push(t, "session-revoked", "alice", "--event-time", strconv.FormatInt(revoked, 10))
		session := func(authTime int64) string {
			return fmt.Sprintf(`{"purpose":"account_servicing","session":{"id":"s-%d","auth_time":%d}}`, authTime, authTime)
		}
		d := s.sigAsk(t, "alice", "view_statements", "acc-alice", session(revoked-3600))
		wantDecision(t, d, false, []string{"session_revoked"}, nil)
		wantDecision(t, s.sigAsk(t, "alice", "view_statements", "acc-alice", session(revoked+30)), true, nil, nil)
		if _, replay := s.explain(t, d.Context.DecisionID); replay != "reproduced" {
			t.Fatalf("replay: %s", replay)
		}
	})
	t.Run("credential stuffing: 30 denials from one IP in a minute block it", func(t *testing.T) {
		const ip = `"ip":"203.0.113.9"`
		for i := range 30 {
			d := s.sigAsk(t, fmt.Sprintf("stuffed-%02d", i), "view_statements", "acc-alice", `{"purpose":"account_servicing",`+ip+`}`)
			if d.Decision {
				t.Fatalf("stuffed-%02d allowed", i)
			}
		}
		d := s.sigAsk(t, "alice", "view_statements", "acc-alice", `{"purpose":"account_servicing",`+ip+`}`)
		wantDecision(t, d, false, []string{"risk_velocity"}, nil)
		wantDecision(t, s.sigAsk(t, "alice", "view_statements", "acc-alice", `{"purpose":"account_servicing","ip":"198.51.100.7"}`), true, nil, nil)
		words, replay := s.explain(t, d.Context.DecisionID)
		if !strings.Contains(words, "30 denied decisions for distinct subjects from ip 203.0.113.9") || replay != "reproduced" {
			t.Fatalf("explanation (%s):\n%s", replay, words)
		}
	})
	t.Run("bad SETs are refused with the RFC 8935 error and change nothing", func(t *testing.T) {
		key := loadDemoTransmitterKey(t)
		other := jose.JSONWebKey{Key: mustECKey(t), KeyID: key.KeyID, Algorithm: "ES256"}
		now := time.Now()
		seq := 0
		claims := func(mod func(map[string]any)) map[string]any {
			seq++
			c := map[string]any{"iss": "https://risk.northbank.example/", "aud": "https://pdp.northbank.example/",
				"iat": now.Unix(), "jti": fmt.Sprintf("bad-set-%d", seq),
				"sub_id": map[string]any{"format": "iss_sub", "iss": "https://idp.northbank.example/", "sub": "carol"},
				"events": map[string]any{signals.RISCPrefix + "account-disabled": map[string]any{}}}
			if mod != nil {
				mod(c)
			}
			return c
		}
		signed := func(k jose.JSONWebKey, c map[string]any) string {
			out, err := signals.Sign(k, c)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		replayed := signed(key, claims(nil))
		if code, body := s.pushRaw(t, replayed, "application/secevent+jwt"); code != http.StatusAccepted {
			t.Fatalf("a good SET: %d %s", code, body)
		}
		wantDecision(t, s.sigAsk(t, "carol", "view_statements", "acc-carol", `{"purpose":"account_servicing"}`), false, []string{"account_disabled"}, nil)
		typJWT := func() string {
			signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key.Key}, (&jose.SignerOptions{}).WithType("JWT"))
			raw, _ := json.Marshal(claims(nil))
			jws, _ := signer.Sign(raw)
			out, _ := jws.CompactSerialize()
			return out
		}
		for _, tc := range []struct {
			name, body, ctype, err string
		}{
			{"wrong key", signed(other, claims(nil)), "", "invalid_key"},
			{"wrong issuer", signed(key, claims(func(c map[string]any) { c["iss"] = "https://evil.example/" })), "", "invalid_issuer"},
			{"wrong audience", signed(key, claims(func(c map[string]any) { c["aud"] = "https://elsewhere.example/" })), "", "invalid_audience"},
			{"expired", signed(key, claims(func(c map[string]any) { c["iat"] = now.Add(-48 * time.Hour).Unix() })), "", "invalid_request"},
			{"replayed jti", replayed, "", "invalid_request"},
			{"malformed JWT", "this.is.not-a-jwt", "", "invalid_request"},
			{"wrong typ", typJWT(), "", "invalid_request"},
			{"oversized", signed(key, claims(func(c map[string]any) { c["txn"] = strings.Repeat("x", 70<<10) })), "", "invalid_request"},
			{"wrong content type", signed(key, claims(func(c map[string]any) { c["sub_id"].(map[string]any)["sub"] = "dave" })), "application/json", "invalid_request"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ct := tc.ctype
				if ct == "" {
					ct = "application/secevent+jwt"
				}
				code, body := s.pushRaw(t, tc.body, ct)
				var e struct {
					Err         string `json:"err"`
					Description string `json:"description"`
				}
				if code != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Err != tc.err || e.Description == "" {
					t.Fatalf("%d %s, want 400 %s", code, body, tc.err)
				}
			})
		}
		for outcome, want := range map[string]float64{"invalid_key": 1, "invalid_issuer": 1, "invalid_audience": 1, "duplicate": 1} {
			if got := s.metric(t, `pdp_signals_received_total{outcome="`+outcome+`"}`); got != want {
				t.Errorf("pdp_signals_received_total{outcome=%q} = %v, want %v", outcome, got, want)
			}
		}
		t.Setenv("PDP_API_KEY", "demo-key-backoffice")
		for _, who := range []string{"user:carol", "user:dave"} {
			code, out, _ := pdpRun("signals", "history", who, "--server", s.URL)
			if want := map[string]int{"user:carol": 1, "user:dave": 0}[who]; code != 0 || strings.Count(out, "account-disabled") != want {
				t.Fatalf("%s history after the bad SETs: %d %s", who, code, out)
			}
		}
		wantDecision(t, s.sigAsk(t, "dave", "view_statements", "acc-carol", forUser("carol", "")), false, []string{"account_disabled"}, nil)
	})
}

func (s *server) pushRaw(t *testing.T, body, ctype string) (int, []byte) {
	t.Helper()
	return s.do(t, http.MethodPost, "/ssf/events", body, "Content-Type", ctype)
}

func loadDemoTransmitterKey(t *testing.T) jose.JSONWebKey {
	t.Helper()
	raw, err := os.ReadFile(nbTransmitterKey)
	if err != nil {
		t.Fatal(err)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	return k
}

func mustECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSignalsPushToken: a transmitter configured with push_token_sha256
// must send that bearer token with each push; without it the push is 401
// authentication_failed and nothing is stored.
func TestSignalsPushToken(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(northbank, "pdp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sum := sha256.Sum256([]byte("push-secret"))
	cfg := replaceOnce(t, string(data), "      delivery: push\n", "      delivery: push\n      push_token_sha256: "+hex.EncodeToString(sum[:])+"\n")
	path := filepath.Join(dir, "pdp.yaml")
	writeFile(t, path, cfg)
	t.Setenv("PDP_SIGNALS_PATH", filepath.Join(dir, "signals.jsonl"))
	s := startNorthbank(t, "--config", path)
	code, out, errOut := pdpRun("signals", "push", "credential-compromise", "bob", "--server", s.URL, "--key", nbTransmitterKey)
	if code == 0 || !strings.Contains(errOut, "401") || !strings.Contains(errOut, "authentication_failed") {
		t.Fatalf("a push without the token: %d %s%s", code, out, errOut)
	}
	pay := forUser("alice", `,"amount":250,"currency":"EUR"`)
	wantDecision(t, s.sigAsk(t, "bob", "make_payment", "acc-alice", pay), true, nil, nil)
	s.push(t, "credential-compromise", "bob", "--token", "push-secret")
	wantDecision(t, s.sigAsk(t, "bob", "make_payment", "acc-alice", pay), false, []string{"account_compromised"}, nil)
}

// TestSignalsPushPrint: `pdp signals push --print` prints the SET it would
// push — signed with the demo key, verifiable with the demo JWKS, a
// complex subject with --session — and usage errors exit 2.
func TestSignalsPushPrint(t *testing.T) {
	code, out, errOut := pdpRun("signals", "push", "session-revoked", "alice", "--key", nbTransmitterKey, "--session", "s-9", "--print")
	if code != 0 {
		t.Fatalf("%d %s%s", code, out, errOut)
	}
	raw, err := os.ReadFile(nbTransmitterJWKS)
	if err != nil {
		t.Fatal(err)
	}
	var jwks jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &jwks); err != nil {
		t.Fatal(err)
	}
	v, err := signals.NewVerifier([]signals.Transmitter{{Issuer: "https://risk.northbank.example/", Audience: []string{"https://pdp.northbank.example/"}, Keys: signals.StaticKeys(jwks.Keys)}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := v.Verify([]byte(strings.TrimSpace(out)), time.Now())
	if err != nil {
		t.Fatalf("the printed SET does not verify: %v", err)
	}
	ev := set.Events[0]
	if ev.Type != signals.CAEPPrefix+"session-revoked" || ev.Subject.Format != "complex" || ev.Subject.SessionID() != "s-9" || ev.Subject.User.Sub != "alice" {
		t.Fatalf("printed %+v %+v", ev, ev.Subject)
	}
	for _, args := range [][]string{{"signals"}, {"signals", "push", "telepathy", "bob"}, {"signals", "list", "bob"}, {"signals", "rewind"}} {
		if code, _, _ := pdpRun(args...); code != 2 {
			t.Errorf("pdp %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
}
