package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ciampdp/pdp/sidecar/client"
	"github.com/ciampdp/pdp/sidecar/internal/pdptest"
)

// centralRoutes map the test bank's API onto the real bundle's actions.
func centralRoutes() []RouteConfig {
	return []RouteConfig{
		{Name: "statements", Methods: []string{"GET"}, Path: "/accounts/{id}/statements", Action: "view_statements",
			Resource: ResourceConfig{Type: "account", ID: "{id}"}, Context: map[string]string{"purpose": "account_servicing"}},
		{Name: "payments", Methods: []string{"POST"}, Path: "/accounts/{id}/payments", Action: "make_payment",
			Resource: ResourceConfig{Type: "account", ID: "{id}"},
			Context:  map[string]string{"amount": "header:X-Payment-Amount|number", "currency": "header:X-Payment-Currency"}},
	}
}

// TestAdaptersAgainstCentralPDP puts the nginx and Envoy adapters in front
// of the real central API (pdp/api over a pdp.Engine and a bank bundle),
// through the client: verified JWT → route → evaluation → engine decision.
func TestAdaptersAgainstCentralPDP(t *testing.T) {
	central := pdptest.Start(t, pdptest.Options{})
	c, err := client.New(central.URL, client.WithAPIKey(pdptest.APIKey))
	if err != nil {
		t.Fatal(err)
	}
	iss := newIssuer(t, "k1")
	jwt := testJWT(iss.writeJWKS("", "k1"))
	jwt.OnBehalfOfClaim = "act_for"
	g, err := New(Config{Routes: centralRoutes(), Subject: SubjectConfig{JWT: jwt}}, Deps{Evaluator: ClientEvaluator{Client: c}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(g.Handler())
	t.Cleanup(hs.Close)

	alice := bearer(iss.sign("k1", stdClaims("alice")))
	bob := bearer(iss.sign("k1", stdClaims("bob")))
	bobForAlice := bearer(iss.sign("k1", with(stdClaims("bob"), map[string]any{"act_for": "alice"})))
	tests := []struct {
		name              string
		method, uri       string
		header            http.Header
		status            int
		reasons, obligate string
	}{
		{"owner views statements", "GET", "/accounts/acc-alice/statements", alice, 200, "", ""},
		{"another user is denied", "GET", "/accounts/acc-alice/statements", bob, 403, "not_permitted", ""},
		{"acting for the owner", "GET", "/accounts/acc-alice/statements", bobForAlice, 200, "", ""},
		{"acting for the owner does not cover payments", "POST", "/accounts/acc-alice/payments", headers(bobForAlice, "X-Payment-Amount", "10"), 403, "not_permitted", ""},
		{"payment within limits", "POST", "/accounts/acc-alice/payments", headers(alice, "X-Payment-Amount", "250", "X-Payment-Currency", "EUR"), 200, "", ""},
		{"payment over the limit", "POST", "/accounts/acc-alice/payments", headers(alice, "X-Payment-Amount", "1500"), 403, "amount_too_high", "step_up_authentication"},
		{"decimal amount the schema types as Long", "POST", "/accounts/acc-alice/payments", headers(alice, "X-Payment-Amount", "2.5"), 403, "invalid_input", ""},
		{"no token", "GET", "/accounts/acc-alice/statements", nil, 401, ReasonUnauthenticated, ""},
		{"no route", "GET", "/accounts/acc-alice/close", alice, 403, ReasonRouteNotFound, ""},
	}
	for _, a := range adapters {
		for _, tt := range tests {
			t.Run(a.name+"/"+tt.name, func(t *testing.T) {
				res, body := a.do(t, hs.URL, tt.method, tt.uri, tt.header)
				if res.StatusCode != tt.status {
					t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, body)
				}
				if got := res.Header.Get(HeaderDecisionReasons); got != tt.reasons {
					t.Errorf("reasons %q, want %q", got, tt.reasons)
				}
				if got := res.Header.Get(HeaderDecisionObligations); got != tt.obligate {
					t.Errorf("obligations %q, want %q", got, tt.obligate)
				}
				id, err := uuid.Parse(res.Header.Get(HeaderDecisionID))
				if err != nil || id.Version() != 7 {
					t.Errorf("decision id %q is not a UUIDv7", res.Header.Get(HeaderDecisionID))
				}
			})
		}
	}

	// The central PDP goes away: every adapter fails closed.
	central.HTTP.Close()
	for _, a := range adapters {
		res, _ := a.do(t, hs.URL, "GET", "/accounts/acc-alice/statements", alice)
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get(HeaderDecisionReasons) != ReasonPDPUnavailable {
			t.Errorf("%s with the PDP down: status %d, reasons %q", a.name, res.StatusCode, res.Header.Get(HeaderDecisionReasons))
		}
	}
}

// TestMapperInApplication uses the gateway's route table inside an
// application, through client.Middleware, against the real central PDP.
func TestMapperInApplication(t *testing.T) {
	central := pdptest.Start(t, pdptest.Options{})
	c, err := client.New(central.URL, client.WithAPIKey(pdptest.APIKey), client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(Config{Routes: centralRoutes(), Unmatched: UnmatchedAllow, Subject: SubjectConfig{Header: "X-User-Id"}},
		Deps{Evaluator: ClientEvaluator{Client: c}})
	if err != nil {
		t.Fatal(err)
	}
	app := client.Middleware(c, g.Mapper())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := client.DecisionFrom(r.Context())
		if ok {
			w.Header().Set("X-App-Decision", d.DecisionID)
		}
		_, _ = io.WriteString(w, "statements")
	}))
	tests := []struct {
		name, method, path string
		user               string
		status             int
		errCode, reason    string
		decided            bool
	}{
		{"allowed", "GET", "/accounts/acc-alice/statements", "alice", 200, "", "", true},
		{"denied", "GET", "/accounts/acc-alice/statements", "bob", 403, "forbidden", "not_permitted", false},
		{"no user", "GET", "/accounts/acc-alice/statements", "", 401, "unauthorized", ReasonUnauthenticated, false},
		{"unmatched is allowed unchecked", "GET", "/rates", "", 200, "", "", false},
		{"bad path", "GET", "/accounts/x/../acc-alice/statements", "alice", 403, "forbidden", ReasonInvalidPath, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://app.test"+tt.path, nil)
			if tt.user != "" {
				r.Header.Set("X-User-Id", tt.user)
			}
			w := httptest.NewRecorder()
			app.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if got := w.Header().Get("X-App-Decision") != ""; got != tt.decided {
				t.Errorf("handler saw a decision: %v, want %v", got, tt.decided)
			}
			if tt.errCode == "" {
				return
			}
			var body client.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if body.Error != tt.errCode || len(body.Reasons) != 1 || body.Reasons[0] != tt.reason || body.DecisionID == "" {
				t.Errorf("body %+v, want %q %q", body, tt.errCode, tt.reason)
			}
		})
	}
}
