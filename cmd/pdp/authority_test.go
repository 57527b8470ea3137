package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Who may change what, end to end over HTTP against the Northbank example:
// register-sourced delegations (B3), actor proof with actor tokens (B4), a
// representative's consent within the delegation (B5) and consent reads
// scoped to the application (B6).

// adminAnswer is an admin API answer: the record or the error with its
// reason code.
type adminAnswer struct {
	Code       int
	Body       string
	Error      string `json:"error"`
	Reason     string `json:"reason"`
	Delegation struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"delegation"`
}

// admin sends an admin request as app, with an Actor-Token when token is
// not empty.
func (s *server) admin(t *testing.T, app, method, path, body, token string) adminAnswer {
	t.Helper()
	header := demoKey(app)
	if token != "" {
		header = append(header, "Actor-Token", token)
	}
	code, data := s.do(t, method, path, body, header...)
	a := adminAnswer{Code: code, Body: string(data)}
	_ = json.Unmarshal(data, &a)
	return a
}

func (s *server) delegationStatus(t *testing.T, id string) string {
	t.Helper()
	a := s.admin(t, "backoffice", http.MethodGet, "/v1/delegations/"+id, "", "")
	var d struct {
		Status string `json:"status"`
	}
	if a.Code != http.StatusOK || json.Unmarshal([]byte(a.Body), &d) != nil {
		t.Fatalf("get %s: %d %s", id, a.Code, a.Body)
	}
	return d.Status
}

func actorBody(id string) string {
	return `{"actor":{"type":"user","id":"` + id + `"},"reason":"test"}`
}

// TestRegisterDelegationsChangeOnlyThroughTheRegister: a statutory guardian
// or legal representative recorded by a register is revoked, suspended and
// resumed by a register application only — not by another admin
// application, whoever it names as the actor (the principal included).
func TestRegisterDelegationsChangeOnlyThroughTheRegister(t *testing.T) {
	s := startNorthbank(t)
	frankViews := func(t *testing.T) nbDecision {
		return s.nbEvaluate(t, "frank", "view_statements", "acc-acme", forAcme(""))
	}
	daveViews := func(t *testing.T) nbDecision {
		return s.nbEvaluate(t, "dave", "view_statements", "acc-carol", forUser("carol", ""))
	}
	for _, tc := range []struct {
		name, app, id, op, actor string
		// hidden: mobile-banking may not read the record and the actor
		// takes no part in it: 404 as an unknown id (delegread_test.go)
		hidden bool
	}{
		{"mobile-banking revokes erin's representation as mallory", "mobile-banking", "rep-acme-erin", "revoke", "mallory", true},
		{"mobile-banking revokes erin's representation as the registrar", "mobile-banking", "rep-acme-erin", "revoke", "registrar", true},
		{"mobile-banking revokes erin's representation as erin, the representative", "mobile-banking", "rep-acme-erin", "revoke", "erin", false},
		{"mobile-banking suspends dave's guardianship as mallory", "mobile-banking", "guardian-carol-dave", "suspend", "mallory", true},
		{"mobile-banking suspends dave's guardianship as carol, the ward", "mobile-banking", "guardian-carol-dave", "suspend", "carol", false},
		{"mobile-banking revokes dave's guardianship as carol, the ward", "mobile-banking", "guardian-carol-dave", "revoke", "carol", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := s.admin(t, tc.app, http.MethodPost, "/v1/delegations/"+tc.id+"/"+tc.op, actorBody(tc.actor), "")
			switch {
			case tc.hidden && a.Code != http.StatusNotFound:
				t.Fatalf("%d %s, want 404 as an unknown id", a.Code, a.Body)
			case !tc.hidden && (a.Code != http.StatusForbidden || a.Reason != "forbidden" || !strings.Contains(a.Error, "register application")):
				t.Fatalf("%d %s, want 403 forbidden naming the register", a.Code, a.Body)
			}
			if st := s.delegationStatus(t, tc.id); st != "active" {
				t.Fatalf("%s is %s after a refused %s", tc.id, st, tc.op)
			}
			if d := frankViews(t); !d.Decision {
				t.Fatalf("frank's sub-delegation fell: %v", d.Context.Reasons)
			}
			if d := daveViews(t); !d.Decision {
				t.Fatalf("dave's guardianship stopped: %v", d.Context.Reasons)
			}
		})
	}
	t.Run("a register-sourced offer from mobile-banking", func(t *testing.T) {
		offer := `{"actor":{"type":"user","id":"mallory"},"principal":{"type":"user","id":"carol"},"agent":{"type":"user","id":"mallory"},
			"basis":"statutory_guardian","source":"register","scope":["view_statements"],"valid_until":"2040-06-15T00:00:00Z"}`
		if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations", offer, ""); a.Code != http.StatusForbidden {
			t.Fatalf("%d %s, want 403", a.Code, a.Body)
		}
	})
	t.Run("a suspended guardianship is not resumed by mobile-banking", func(t *testing.T) {
		if a := s.admin(t, "backoffice", http.MethodPost, "/v1/delegations/guardian-carol-dave/suspend", actorBody("registrar"), ""); a.Code != http.StatusOK {
			t.Fatalf("the register suspends: %d %s", a.Code, a.Body)
		}
		if d := daveViews(t); d.Decision {
			t.Fatal("dave allowed while his guardianship is suspended")
		}
		// dave and carol take part: 403; the registrar does not, through an
		// application that may not read the record: 404 as an unknown id
		for actor, want := range map[string]int{"dave": http.StatusForbidden, "carol": http.StatusForbidden, "registrar": http.StatusNotFound} {
			if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/guardian-carol-dave/resume", actorBody(actor), ""); a.Code != want {
				t.Fatalf("mobile-banking resumes as %s: %d %s, want %d", actor, a.Code, a.Body, want)
			}
		}
		if d := daveViews(t); d.Decision {
			t.Fatal("dave allowed again after a refused resume")
		}
		if a := s.admin(t, "backoffice", http.MethodPost, "/v1/delegations/guardian-carol-dave/resume", actorBody("registrar"), ""); a.Code != http.StatusOK {
			t.Fatalf("the register resumes: %d %s", a.Code, a.Body)
		}
		if d := daveViews(t); !d.Decision {
			t.Fatalf("dave denied after the register resumed: %v", d.Context.Reasons)
		}
	})
	t.Run("the register revokes erin's representation, and frank's falls with it", func(t *testing.T) {
		if a := s.admin(t, "backoffice", http.MethodPost, "/v1/delegations/rep-acme-erin/revoke", actorBody("registrar"), ""); a.Code != http.StatusOK {
			t.Fatalf("%d %s", a.Code, a.Body)
		}
		if d := frankViews(t); d.Decision {
			t.Fatal("frank still allowed")
		}
	})
}

// actorTokensConfig is the example with actor proof, its JWKS path made
// absolute for the tests' working folder.
func startNorthbankActorTokens(t *testing.T) *server {
	t.Helper()
	jwks, err := filepath.Abs(filepath.Join(nbSidecarDir, "jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PDP_AUTH_ACTOR_TOKENS_JWKS_FILE", jwks)
	return startNorthbank(t, "--config", filepath.Join(northbank, "pdp-actor-tokens.yaml"))
}

// actorToken is a token of Northbank's identity provider for the PDP,
// issued to a client of app (nbActorClients) with a fresh jti, as
// `mint-token -sub <id> -aud https://pdp.northbank.example/ -azp <client>`
// makes it.
func actorToken(t *testing.T, app, sub string, claims map[string]any) string {
	t.Helper()
	c := map[string]any{"aud": "https://pdp.northbank.example/", "azp": nbActorClients[app], "jti": rand.Text()}
	for k, v := range claims {
		c[k] = v
	}
	return nbToken(t, sub, c)
}

// TestActorTokensProveTheActor: with auth.actor_tokens, a delegation or
// consent change names an actor only with that actor's own token; one
// admin key can no longer offer and accept a power of attorney for anyone.
func TestActorTokensProveTheActor(t *testing.T) {
	s := startNorthbankActorTokens(t)
	offer := `{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"mallory"},
		"basis":"power_of_attorney","source":"self_declared","scope":["view_statements","make_payment"],
		"resources":[{"type":"account","id":"acc-alice"}],"constraints":{"max_amount":50000,"currency":"EUR"},
		"valid_from":"2026-01-01T00:00:00Z","valid_until":"2041-01-01T00:00:00Z"}`
	now := time.Now()
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged := signToken(t, jose.JSONWebKey{Key: otherKey, KeyID: "northbank-demo-1", Algorithm: "ES256"}, "alice",
		map[string]any{"aud": "https://pdp.northbank.example/"})
	bad := []struct{ name, token string }{
		{"no token", ""},
		{"mallory's token for alice's offer", actorToken(t, "mobile-banking", "mallory", nil)},
		{"expired", actorToken(t, "mobile-banking", "alice", map[string]any{"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})},
		{"not valid yet", actorToken(t, "mobile-banking", "alice", map[string]any{"nbf": now.Add(time.Hour).Unix()})},
		{"the gateway's audience", actorToken(t, "mobile-banking", "alice", map[string]any{"aud": "mobile-banking"})},
		{"another issuer", actorToken(t, "mobile-banking", "alice", map[string]any{"iss": "https://evil.example/"})},
		{"signed with another key", forged},
		{"not a token", "alice"},
	}
	mallorys := func(t *testing.T) int {
		t.Helper()
		code, data := s.do(t, http.MethodGet, "/v1/delegations?agent=user:mallory", "", demoKey("backoffice")...)
		if code != http.StatusOK {
			t.Fatalf("list: %d %s", code, data)
		}
		return strings.Count(string(data), `"id":`)
	}
	t.Run("offer", func(t *testing.T) {
		for _, tc := range bad {
			t.Run(tc.name, func(t *testing.T) {
				a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations", offer, tc.token)
				if a.Code != http.StatusUnauthorized || a.Reason != "actor_unproven" {
					t.Fatalf("%d %s, want 401 actor_unproven", a.Code, a.Body)
				}
				if n := mallorys(t); n != 0 {
					t.Fatalf("%d delegations to mallory after a refused offer", n)
				}
			})
		}
	})
	t.Run("alice's own offer, and mallory cannot accept it as someone else", func(t *testing.T) {
		a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations", offer, actorToken(t, "mobile-banking", "alice", nil))
		if a.Code != http.StatusCreated {
			t.Fatalf("offer with alice's token: %d %s", a.Code, a.Body)
		}
		id := a.Delegation.ID
		for _, tok := range []string{"", actorToken(t, "mobile-banking", "alice", nil)} {
			if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/"+id+"/accept", actorBody("mallory"), tok); a.Code != http.StatusUnauthorized {
				t.Fatalf("accept as mallory without her token: %d %s", a.Code, a.Body)
			}
		}
		if st := s.delegationStatus(t, id); st != "offered" {
			t.Fatalf("status %s after refused accepts", st)
		}
		if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/"+id+"/accept", actorBody("mallory"), actorToken(t, "mobile-banking", "mallory", nil)); a.Code != http.StatusOK {
			t.Fatalf("mallory accepts with her token: %d %s", a.Code, a.Body)
		}
		if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/"+id+"/revoke", actorBody("alice"), ""); a.Code != http.StatusUnauthorized {
			t.Fatalf("revoke without a token: %d %s", a.Code, a.Body)
		}
		if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/"+id+"/revoke", actorBody("alice"), actorToken(t, "mobile-banking", "alice", nil)); a.Code != http.StatusOK {
			t.Fatalf("alice revokes with her token: %d %s", a.Code, a.Body)
		}
	})
	t.Run("pdp delegation sends PDP_ACTOR_TOKEN", func(t *testing.T) {
		t.Setenv("PDP_API_KEY", "demo-key-mobile-banking")
		cli := func() (int, string) {
			var out, errOut strings.Builder
			code := run(context.Background(), []string{"delegation", "--server", s.URL, "accept", "poa-alice-peggy", "--actor", "user:peggy"},
				strings.NewReader(""), &out, &errOut)
			return code, out.String() + errOut.String()
		}
		code, out := cli()
		if code == exitOK || !strings.Contains(out, "401") || !strings.Contains(out, "Actor-Token") {
			t.Fatalf("without PDP_ACTOR_TOKEN: %d %s", code, out)
		}
		t.Setenv("PDP_ACTOR_TOKEN", actorToken(t, "mobile-banking", "peggy", nil))
		if code, out := cli(); code != exitOK || !strings.Contains(out, `"active"`) {
			t.Fatalf("with peggy's token: %d %s", code, out)
		}
	})
	t.Run("register changes need the registrar's token", func(t *testing.T) {
		if a := s.admin(t, "backoffice", http.MethodPost, "/v1/delegations/rep-acme-erin/suspend", actorBody("registrar"), ""); a.Code != http.StatusUnauthorized {
			t.Fatalf("%d %s", a.Code, a.Body)
		}
		if a := s.admin(t, "backoffice", http.MethodPost, "/v1/delegations/rep-acme-erin/suspend", actorBody("registrar"), actorToken(t, "backoffice", "registrar", nil)); a.Code != http.StatusOK {
			t.Fatalf("%d %s", a.Code, a.Body)
		}
	})
	t.Run("consent", func(t *testing.T) {
		withdraw := `{"subject":{"type":"user","id":"alice"},"purpose":"financial_advice","reason":"test"}`
		gina := func() nbDecision {
			return s.nbAsk(t, "advisor-portal", user("gina"), "view_portfolio", `{"type":"account","id":"acc-alice"}`, `{"purpose":"financial_advice"}`)
		}
		for _, tc := range bad {
			a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/consents/withdraw", withdraw, tc.token)
			if a.Code != http.StatusUnauthorized || a.Reason != "actor_unproven" {
				t.Fatalf("withdraw, %s: %d %s", tc.name, a.Code, a.Body)
			}
			if d := gina(); !d.Decision {
				t.Fatalf("alice's consent ended by a refused withdrawal (%s): %v", tc.name, d.Context.Reasons)
			}
		}
		if a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/consents/withdraw", withdraw, actorToken(t, "advisor-portal", "alice", nil)); a.Code != http.StatusOK {
			t.Fatalf("withdraw with alice's token: %d %s", a.Code, a.Body)
		}
		if d := gina(); d.Decision || !slices.Equal(d.Context.Reasons, []string{"consent_withdrawn"}) {
			t.Fatalf("gina after the withdrawal: %v %v", d.Decision, d.Context.Reasons)
		}
		give := `{"subject":{"type":"user","id":"alice"},"purpose":"financial_advice","jurisdiction":"DE",
			"notice":{"uri":"https://northbank.example/privacy/advice","version":1}}`
		if a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/consents/give", give, actorToken(t, "advisor-portal", "gina", nil)); a.Code != http.StatusUnauthorized {
			t.Fatalf("give for alice with gina's token: %d %s", a.Code, a.Body)
		}
		if d := gina(); d.Decision {
			t.Fatal("gina allowed after a refused grant")
		}
		// A controller's revocation is the application's own act: its key proves it.
		revoke := `{"subject":{"type":"user","id":"judy"},"purpose":"account_information_sharing","revoke":true,"reason":"fraud"}`
		give = `{"subject":{"type":"user","id":"judy"},"purpose":"account_information_sharing","jurisdiction":"DE","notice":{"uri":"u","version":1}}`
		if a := s.admin(t, "budget-app", http.MethodPost, "/v1/consents/give", give, actorToken(t, "budget-app", "judy", nil)); a.Code != http.StatusCreated {
			t.Fatalf("judy gives: %d %s", a.Code, a.Body)
		}
		if a := s.admin(t, "budget-app", http.MethodPost, "/v1/consents/withdraw", revoke, ""); a.Code != http.StatusOK {
			t.Fatalf("the controller revokes: %d %s", a.Code, a.Body)
		}
	})
}

// TestRepresentativeConsentWithinDelegation: peggy holds a view-only power
// of attorney from alice; she may not give (or withdraw) alice's consent to
// financial advice through it — the purposes registry asks for a delegation
// covering view_portfolio — while dave, carol's guardian, still consents to
// marketing for her.
func TestRepresentativeConsentWithinDelegation(t *testing.T) {
	s := startNorthbank(t)
	if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/poa-alice-peggy/accept", actorBody("peggy"), ""); a.Code != http.StatusOK {
		t.Fatalf("peggy accepts: %d %s", a.Code, a.Body)
	}
	gina := func() nbDecision {
		return s.nbAsk(t, "advisor-portal", user("gina"), "view_portfolio", `{"type":"account","id":"acc-alice"}`, `{"purpose":"financial_advice"}`)
	}
	if a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/consents/withdraw",
		`{"subject":{"type":"user","id":"alice"},"purpose":"financial_advice","reason":"changed my mind"}`, ""); a.Code != http.StatusOK {
		t.Fatalf("alice withdraws: %d %s", a.Code, a.Body)
	}
	if d := gina(); d.Decision {
		t.Fatal("gina allowed after alice withdrew")
	}
	for _, tc := range []struct{ name, op, body string }{
		{"give", "give", `{"subject":{"type":"user","id":"alice"},"actor":{"type":"user","id":"peggy"},"delegation":"poa-alice-peggy",
			"purpose":"financial_advice","jurisdiction":"DE","notice":{"uri":"https://northbank.example/privacy/advice","version":1}}`},
		{"refuse", "refuse", `{"subject":{"type":"user","id":"alice"},"actor":{"type":"user","id":"peggy"},"delegation":"poa-alice-peggy",
			"purpose":"financial_advice","jurisdiction":"DE"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/consents/"+tc.op, tc.body, "")
			if a.Code != http.StatusForbidden || a.Reason != "delegation_out_of_scope" || !strings.Contains(a.Error, "view_portfolio") {
				t.Fatalf("%d %s, want 403 delegation_out_of_scope naming view_portfolio", a.Code, a.Body)
			}
			if d := gina(); d.Decision || !slices.Equal(d.Context.Reasons, []string{"consent_withdrawn"}) {
				t.Fatalf("gina after peggy's refused %s: %v %v", tc.op, d.Decision, d.Context.Reasons)
			}
		})
	}
	t.Run("peggy withdraws alice's account information sharing", func(t *testing.T) {
		// A fresh grant: the seeded one lasts 180 days (PSD2) and expires.
		give := `{"subject":{"type":"user","id":"alice"},"purpose":"account_information_sharing","jurisdiction":"DE","notice":{"uri":"https://budget.example/consent","version":2}}`
		if a := s.admin(t, "budget-app", http.MethodPost, "/v1/consents/give", give, ""); a.Code != http.StatusCreated {
			t.Fatalf("alice grants account information sharing: %d %s", a.Code, a.Body)
		}
		a := s.admin(t, "budget-app", http.MethodPost, "/v1/consents/withdraw",
			`{"subject":{"type":"user","id":"alice"},"actor":{"type":"user","id":"peggy"},"delegation":"poa-alice-peggy","purpose":"account_information_sharing"}`, "")
		if a.Code != http.StatusForbidden || a.Reason != "delegation_out_of_scope" {
			t.Fatalf("%d %s, want 403 delegation_out_of_scope", a.Code, a.Body)
		}
		if d := s.nbAsk(t, "budget-app", user("alice"), "share_account_information", `{"type":"account","id":"acc-alice"}`, `{"purpose":"account_information_sharing"}`); !d.Decision {
			t.Fatalf("alice's sharing ended by a refused withdrawal: %v", d.Context.Reasons)
		}
	})
	t.Run("dave, carol's guardian, consents to marketing for her", func(t *testing.T) {
		a := s.admin(t, "marketing-hub", http.MethodPost, "/v1/consents/give",
			`{"subject":{"type":"user","id":"carol"},"actor":{"type":"user","id":"dave"},"delegation":"guardian-carol-dave",
			"purpose":"marketing","jurisdiction":"DE","notice":{"uri":"https://northbank.example/privacy/marketing","version":3}}`, "")
		if a.Code != http.StatusCreated {
			t.Fatalf("%d %s", a.Code, a.Body)
		}
	})
}

// TestConsentReadsScoped: an application reads the consents it is party
// to; a consent administrator (backoffice in the example) reads them all.
func TestConsentReadsScoped(t *testing.T) {
	s := startNorthbank(t)
	type state struct {
		Grants []struct {
			ID string `json:"id"`
		} `json:"grants"`
	}
	grants := func(t *testing.T, app, subject, query string) []string {
		t.Helper()
		code, data := s.do(t, http.MethodGet, "/v1/consents/subjects/"+subject+query, "", demoKey(app)...)
		var st state
		if code != http.StatusOK || json.Unmarshal(data, &st) != nil {
			t.Fatalf("state: %d %s", code, data)
		}
		var ids []string
		for _, g := range st.Grants {
			ids = append(ids, g.ID)
		}
		slices.Sort(ids)
		return ids
	}
	history := func(t *testing.T, app, subject string) string {
		t.Helper()
		code, data := s.do(t, http.MethodGet, "/v1/consents/subjects/"+subject+"/history", "", demoKey(app)...)
		if code != http.StatusOK {
			t.Fatalf("history: %d %s", code, data)
		}
		return string(data)
	}
	for _, tc := range []struct {
		app, subject string
		want         []string
	}{
		{"budget-app", "user:alice", []string{"grant-alice-ais"}},
		{"advisor-portal", "user:alice", []string{"grant-alice-advice"}},
		{"marketing-hub", "user:alice", nil},
		{"mobile-banking", "user:alice", nil},
		{"backoffice", "user:alice", []string{"grant-alice-advice", "grant-alice-ais"}},
		{"marketing-hub", "user:carol", []string{"grant-carol-by-dave", "grant-carol-own"}},
		{"budget-app", "user:carol", nil},
	} {
		t.Run(tc.app+" reads "+tc.subject, func(t *testing.T) {
			// A week ago: both of alice's grants were in force (the seed
			// dates them 67 and 14 days before the first start).
			for _, q := range []string{"", "?at=" + time.Now().UTC().AddDate(0, 0, -7).Format(time.RFC3339)} {
				if got := grants(t, tc.app, tc.subject, q); !slices.Equal(got, tc.want) {
					t.Errorf("state%s: grants %v, want %v", q, got, tc.want)
				}
			}
			h := history(t, tc.app, tc.subject)
			for _, id := range []string{"grant-alice-advice", "grant-alice-ais", "grant-carol-by-dave", "grant-carol-own"} {
				if strings.Contains(h, id) != slices.Contains(tc.want, id) {
					t.Errorf("history mentions %s: %v, want %v:\n%s", id, strings.Contains(h, id), slices.Contains(tc.want, id), h)
				}
			}
		})
	}
	t.Run("receipts", func(t *testing.T) {
		for _, tc := range []struct {
			app, event string
			code       int
		}{
			{"advisor-portal", "cev-alice-advice", http.StatusOK},
			{"budget-app", "cev-alice-advice", http.StatusNotFound},
			{"marketing-hub", "cev-alice-ais", http.StatusNotFound},
			{"backoffice", "cev-alice-advice", http.StatusOK},
			{"budget-app", "cev-no-such-event", http.StatusNotFound},
		} {
			if code, data := s.do(t, http.MethodGet, "/v1/consents/receipts/"+tc.event, "", demoKey(tc.app)...); code != tc.code {
				t.Errorf("%s reads the receipt of %s: %d %s, want %d", tc.app, tc.event, code, data, tc.code)
			}
		}
	})
	t.Run("a withdrawal through another application ends the grant in its party's view", func(t *testing.T) {
		if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/consents/withdraw",
			`{"subject":{"type":"user","id":"alice"},"purpose":"financial_advice"}`, ""); a.Code != http.StatusOK {
			t.Fatalf("withdraw: %d %s", a.Code, a.Body)
		}
		if got := grants(t, "advisor-portal", "user:alice", ""); len(got) != 0 {
			t.Fatalf("advisor-portal still sees %v", got)
		}
		if h := history(t, "advisor-portal", "user:alice"); !strings.Contains(h, `"withdrawn"`) {
			t.Fatalf("advisor-portal's history lacks the withdrawal:\n%s", h)
		}
	})
}

// TestActorTokenKeysUnavailable: when the identity provider's JWKS cannot
// be fetched the PDP still starts, and every change is refused with 503
// (fail closed) — nothing changes, decisions go on.
func TestActorTokenKeysUnavailable(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(northbank, "pdp-actor-tokens.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := replaceOnce(t, string(data), "jwks_file: examples/northbank/sidecar/jwks.json", "jwks_url: https://127.0.0.1:1/jwks.json")
	path := filepath.Join(t.TempDir(), "pdp.yaml")
	writeFile(t, path, cfg)
	s := startNorthbank(t, "--config", path)
	a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/poa-alice-bob/revoke", actorBody("alice"), actorToken(t, "mobile-banking", "alice", nil))
	if a.Code != http.StatusServiceUnavailable || a.Reason != "actor_keys_unavailable" {
		t.Fatalf("%d %s, want 503 actor_keys_unavailable", a.Code, a.Body)
	}
	if st := s.delegationStatus(t, "poa-alice-bob"); st != "active" {
		t.Fatalf("poa-alice-bob is %s", st)
	}
	if d := s.nbEvaluate(t, "bob", "view_statements", "acc-alice", forUser("alice", "")); !d.Decision {
		t.Fatalf("bob denied: %v", d.Context.Reasons)
	}
}
