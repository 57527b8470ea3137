package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/authzen"
)

// fakeEvaluator is the unit-test seam of the handlers (the real central
// PDP is used in central_test.go). It allows a subject on its own account
// ("acc-<id>") or on the account of the person it acts for, denies
// payments over 1000 with a step-up obligation, and records every request.
type fakeEvaluator struct {
	mu   sync.Mutex
	reqs []pdp.Request
	err  error
	wait bool // block until the context ends
}

func (f *fakeEvaluator) Evaluate(ctx context.Context, req pdp.Request) (authzen.DecisionResponse, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	n, err, wait := len(f.reqs), f.err, f.wait
	f.mu.Unlock()
	if wait {
		<-ctx.Done()
		return authzen.DecisionResponse{}, ctx.Err()
	}
	if err != nil {
		return authzen.DecisionResponse{}, err
	}
	c := &authzen.DecisionContext{DecisionID: fmt.Sprintf("d-%d", n), Policies: []string{}, Reasons: []string{}, Obligations: []string{}}
	owner := req.Subject.ID
	if obo, ok := req.Context[pdp.ContextOnBehalfOf].(map[string]any); ok {
		owner, _ = obo["id"].(string)
	}
	if amount, ok := req.Context["amount"].(json.Number); ok {
		if f, _ := amount.Float64(); f > 1000 {
			c.Reasons, c.Obligations = []string{"amount_too_high"}, []string{"step_up_authentication"}
			return authzen.DecisionResponse{Decision: false, Context: c}, nil
		}
	}
	if req.Resource.ID == "acc-"+owner || req.Resource.Type == "bank" {
		return authzen.DecisionResponse{Decision: true, Context: c}, nil
	}
	c.Reasons = []string{"not_permitted"}
	return authzen.DecisionResponse{Decision: false, Context: c}, nil
}

func (f *fakeEvaluator) requests() []pdp.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]pdp.Request(nil), f.reqs...)
}

// testRoutes is the route table of the handler tests.
func testRoutes() []RouteConfig {
	return []RouteConfig{
		{Name: "statements", Methods: []string{"GET"}, Path: "/accounts/{id}/statements", Action: "view_statements",
			Resource: ResourceConfig{Type: "account", ID: "{id}"}, Context: map[string]string{"purpose": "account_servicing"}},
		{Name: "payments", Methods: []string{"POST"}, Path: "/accounts/{id}/payments", Action: "make_payment",
			Resource: ResourceConfig{Type: "account", ID: "{id}"},
			Context:  map[string]string{"amount": "header:X-Payment-Amount|number", "currency": "header:X-Payment-Currency"}},
		{Name: "account", Methods: []string{"GET", "HEAD"}, Path: "/accounts/{id}", Action: "view_statements",
			Resource: ResourceConfig{Type: "account", ID: "{id}", Properties: map[string]string{"region": "query:region"}}},
		{Name: "bank", Methods: []string{"*"}, Path: "/bank", Action: "view_bank",
			Resource: ResourceConfig{Type: "bank", ID: "northbank"}, Context: map[string]string{"acr": "claim:acr"}},
	}
}

// newTestGateway serves a JWT-mode gateway over ev; change edits the config.
func newTestGateway(t *testing.T, ev Evaluator, change func(*Config)) (*httptest.Server, *issuer) {
	t.Helper()
	iss := newIssuer(t, "k1")
	jwt := testJWT(iss.writeJWKS("", "k1"))
	jwt.OnBehalfOfClaim = "act_for"
	cfg := Config{Routes: testRoutes(), Subject: SubjectConfig{JWT: jwt}, SubjectHeader: "X-Authz-Subject"}
	if change != nil {
		change(&cfg)
	}
	g, err := New(cfg, Deps{Evaluator: ev})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(g.Handler())
	t.Cleanup(hs.Close)
	return hs, iss
}

// adapter sends an original request through one of the two proxy adapters.
type adapter struct {
	name string
	do   func(t *testing.T, base, method, uri string, h http.Header) (*http.Response, []byte)
}

var adapters = []adapter{
	{"nginx", func(t *testing.T, base, method, uri string, h http.Header) (*http.Response, []byte) {
		h = h.Clone()
		if h == nil {
			h = http.Header{}
		}
		h.Set(HeaderOriginalMethod, method)
		h.Set(HeaderOriginalURI, uri)
		return send(t, http.MethodGet, base+DefaultNginxPath, h)
	}},
	{"envoy", func(t *testing.T, base, method, uri string, h http.Header) (*http.Response, []byte) {
		return send(t, method, base+DefaultEnvoyPrefix+uri, h)
	}},
}

func send(t *testing.T, method, url string, h http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func headers(h http.Header, kv ...string) http.Header {
	h = h.Clone()
	if h == nil {
		h = http.Header{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestHandlers(t *testing.T) {
	ev := &fakeEvaluator{}
	hs, iss := newTestGateway(t, ev, nil)
	alice := bearer(iss.sign("k1", stdClaims("alice")))
	bobForAlice := bearer(iss.sign("k1", with(stdClaims("bob"), map[string]any{"act_for": "alice"})))
	bobForAliceObj := bearer(iss.sign("k1", with(stdClaims("bob"), map[string]any{"act_for": map[string]any{"type": "user", "id": "alice"}})))
	expired := bearer(iss.sign("k1", with(stdClaims("alice"), map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})))
	withACR := bearer(iss.sign("k1", with(stdClaims("alice"), map[string]any{"acr": "urn:bank:loa:3"})))

	tests := []struct {
		name        string
		method, uri string
		header      http.Header
		status      int
		reasons     string
		obligations string
		challenge   string       // substring of WWW-Authenticate
		want        *pdp.Request // the evaluation sent, if one should be
	}{
		{name: "owner views statements", method: "GET", uri: "/accounts/acc-alice/statements", header: alice, status: 200,
			want: &pdp.Request{Subject: pdp.Entity{Type: "user", ID: "alice"}, Action: pdp.Action{Name: "view_statements"},
				Resource: pdp.Entity{Type: "account", ID: "acc-alice"}, Context: map[string]any{"purpose": "account_servicing"}}},
		{name: "query is not part of the path", method: "GET", uri: "/accounts/acc-alice/statements?from=2026-01-01", header: alice, status: 200},
		{name: "other account denied", method: "GET", uri: "/accounts/acc-bob/statements", header: alice, status: 403, reasons: "not_permitted"},
		{name: "acting for someone (claim string)", method: "GET", uri: "/accounts/acc-alice/statements", header: bobForAlice, status: 200,
			want: &pdp.Request{Subject: pdp.Entity{Type: "user", ID: "bob"}, Action: pdp.Action{Name: "view_statements"},
				Resource: pdp.Entity{Type: "account", ID: "acc-alice"},
				Context:  map[string]any{"purpose": "account_servicing", "on_behalf_of": map[string]any{"type": "user", "id": "alice"}}}},
		{name: "acting for someone (claim object)", method: "GET", uri: "/accounts/acc-alice/statements", header: bobForAliceObj, status: 200},
		{name: "payment with headers", method: "POST", uri: "/accounts/acc-alice/payments",
			header: headers(alice, "X-Payment-Amount", "250", "X-Payment-Currency", "EUR"), status: 200,
			want: &pdp.Request{Subject: pdp.Entity{Type: "user", ID: "alice"}, Action: pdp.Action{Name: "make_payment"},
				Resource: pdp.Entity{Type: "account", ID: "acc-alice"}, Context: map[string]any{"amount": json.Number("250"), "currency": "EUR"}}},
		{name: "big payment: reasons and obligations", method: "POST", uri: "/accounts/acc-alice/payments",
			header: headers(alice, "X-Payment-Amount", "1500.50"), status: 403, reasons: "amount_too_high", obligations: "step_up_authentication"},
		{name: "amount that is not a number", method: "POST", uri: "/accounts/acc-alice/payments",
			header: headers(alice, "X-Payment-Amount", "lots"), status: 403, reasons: ReasonInvalidInput},
		{name: "amount in hex is not a JSON number", method: "POST", uri: "/accounts/acc-alice/payments",
			header: headers(alice, "X-Payment-Amount", "0x10"), status: 403, reasons: ReasonInvalidInput},
		{name: "absent optional value is left out", method: "HEAD", uri: "/accounts/acc-alice", header: alice, status: 200,
			want: &pdp.Request{Subject: pdp.Entity{Type: "user", ID: "alice"}, Action: pdp.Action{Name: "view_statements"},
				Resource: pdp.Entity{Type: "account", ID: "acc-alice"}}},
		{name: "query value as a property", method: "GET", uri: "/accounts/acc-alice?region=eu", header: alice, status: 200,
			want: &pdp.Request{Subject: pdp.Entity{Type: "user", ID: "alice"}, Action: pdp.Action{Name: "view_statements"},
				Resource: pdp.Entity{Type: "account", ID: "acc-alice", Properties: map[string]any{"region": "eu"}}}},
		{name: "claim into context, any method", method: "DELETE", uri: "/bank", header: withACR, status: 200,
			want: &pdp.Request{Subject: pdp.Entity{Type: "user", ID: "alice"}, Action: pdp.Action{Name: "view_bank"},
				Resource: pdp.Entity{Type: "bank", ID: "northbank"}, Context: map[string]any{"acr": "urn:bank:loa:3"}}},
		{name: "encoded id is decoded", method: "GET", uri: "/accounts/acc%2Dalice/statements", header: alice, status: 200},
		{name: "no token", method: "GET", uri: "/accounts/acc-alice/statements", status: 401, reasons: ReasonUnauthenticated, challenge: `Bearer realm="pdp"`},
		{name: "other scheme", method: "GET", uri: "/accounts/acc-alice/statements", header: http.Header{"Authorization": {"Basic YWxpY2U6eA=="}},
			status: 401, reasons: ReasonUnauthenticated},
		{name: "expired token", method: "GET", uri: "/accounts/acc-alice/statements", header: expired, status: 401,
			reasons: ReasonInvalidToken, challenge: `error="invalid_token", error_description="token expired"`},
		{name: "garbage token", method: "GET", uri: "/accounts/acc-alice/statements", header: bearer("x.y.z"), status: 401, reasons: ReasonInvalidToken},
		{name: "no route", method: "GET", uri: "/admin", header: alice, status: 403, reasons: ReasonRouteNotFound},
		{name: "no route for the method", method: "DELETE", uri: "/accounts/acc-alice/statements", header: alice, status: 403, reasons: ReasonRouteNotFound},
		{name: "no route is checked before the token", method: "GET", uri: "/admin", status: 403, reasons: ReasonRouteNotFound},
		{name: "trailing slash is another path", method: "GET", uri: "/accounts/acc-alice/statements/", header: alice, status: 403, reasons: ReasonRouteNotFound},
		{name: "dot segments are refused", method: "GET", uri: "/accounts/acc-bob/../acc-alice/statements", header: alice, status: 403, reasons: ReasonInvalidPath},
		{name: "encoded slash is refused", method: "GET", uri: "/accounts/acc-alice%2Fstatements", header: alice, status: 403, reasons: ReasonInvalidPath},
		{name: "double slash is refused", method: "GET", uri: "/accounts//acc-alice/statements", header: alice, status: 403, reasons: ReasonInvalidPath},
	}
	for _, a := range adapters {
		for _, tt := range tests {
			t.Run(a.name+"/"+tt.name, func(t *testing.T) {
				before := len(ev.requests())
				res, body := a.do(t, hs.URL, tt.method, tt.uri, tt.header)
				if res.StatusCode != tt.status {
					t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, body)
				}
				if res.Header.Get(HeaderDecisionID) == "" {
					t.Error("no X-Decision-Id")
				}
				if got := res.Header.Get(HeaderDecisionReasons); got != tt.reasons {
					t.Errorf("reasons %q, want %q", got, tt.reasons)
				}
				if got := res.Header.Get(HeaderDecisionObligations); got != tt.obligations {
					t.Errorf("obligations %q, want %q", got, tt.obligations)
				}
				if got := res.Header.Get("WWW-Authenticate"); !strings.Contains(got, tt.challenge) || (tt.status == 401) != (got != "") {
					t.Errorf("WWW-Authenticate %q, want %q", got, tt.challenge)
				}
				if res.Header.Get("Cache-Control") != "no-store" {
					t.Error("answer may be cached")
				}
				if tt.status == 200 && res.Header.Get("X-Authz-Subject") == "" {
					t.Error("no subject header on an allow")
				}
				if tt.status != 200 {
					var eb errorBody
					if err := json.Unmarshal(body, &eb); err != nil || eb.DecisionID != res.Header.Get(HeaderDecisionID) || eb.Error == "" {
						t.Errorf("body %s (%v)", body, err)
					}
				}
				reqs := ev.requests()[before:]
				if tt.want != nil {
					if len(reqs) != 1 {
						t.Fatalf("%d evaluations, want 1", len(reqs))
					}
					if !reflect.DeepEqual(reqs[0], *tt.want) {
						t.Errorf("evaluation\n got %+v\nwant %+v", reqs[0], *tt.want)
					}
				}
				local := tt.reasons != "" && tt.reasons != "not_permitted" && tt.reasons != "amount_too_high"
				if local && len(reqs) != 0 {
					t.Errorf("the gateway answered itself but still asked the PDP: %+v", reqs)
				}
			})
		}
	}
}

// TestFailClosed: an Evaluator that fails or times out gives 503, which
// both proxies turn into a refusal.
func TestFailClosed(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   *fakeEvaluator
	}{
		{"error", &fakeEvaluator{err: errors.New("connection refused")}},
		{"timeout", &fakeEvaluator{wait: true}},
	} {
		hs, iss := newTestGateway(t, tc.ev, func(c *Config) { c.Timeout = 50 * time.Millisecond })
		for _, a := range adapters {
			t.Run(tc.name+"/"+a.name, func(t *testing.T) {
				res, _ := a.do(t, hs.URL, "GET", "/accounts/acc-alice/statements", bearer(iss.sign("k1", stdClaims("alice"))))
				if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get(HeaderDecisionReasons) != ReasonPDPUnavailable ||
					res.Header.Get(HeaderDecisionID) == "" {
					t.Fatalf("status %d, reasons %q", res.StatusCode, res.Header.Get(HeaderDecisionReasons))
				}
			})
		}
	}
}

// TestKeysUnavailable: a JWKS that cannot be loaded is a 503, not a 401.
func TestKeysUnavailable(t *testing.T) {
	srv := newJWKSServer(t, nil)
	srv.set(http.StatusInternalServerError, nil)
	iss := newIssuer(t, "k1")
	g, err := New(Config{Routes: testRoutes(), Subject: SubjectConfig{JWT: JWTConfig{JWKSURL: srv.URL, Issuer: testIssuer, Audience: []string{testAudience}}}},
		Deps{Evaluator: &fakeEvaluator{}, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	v := g.Check(context.Background(), Request{Method: "GET", Path: "/accounts/acc-alice/statements", Header: bearer(iss.sign("k1", stdClaims("alice")))})
	if v.Status != http.StatusServiceUnavailable || !reflect.DeepEqual(v.Reasons, []string{ReasonKeysUnavailable}) {
		t.Fatalf("verdict %+v", v)
	}
}

func TestNginxNeedsOriginalHeaders(t *testing.T) {
	ev := &fakeEvaluator{}
	hs, iss := newTestGateway(t, ev, nil)
	for _, h := range []http.Header{
		headers(bearer(iss.sign("k1", stdClaims("alice"))), HeaderOriginalURI, "/accounts/acc-alice/statements"),
		headers(bearer(iss.sign("k1", stdClaims("alice"))), HeaderOriginalMethod, "GET"),
	} {
		res, body := send(t, http.MethodPost, hs.URL+DefaultNginxPath, h)
		if res.StatusCode != http.StatusBadRequest || res.Header.Get(HeaderDecisionID) == "" {
			t.Errorf("status %d: %s", res.StatusCode, body)
		}
	}
	if n := len(ev.requests()); n != 0 {
		t.Errorf("%d evaluations", n)
	}
	// An absolute-form $request_uri is reduced to its path.
	h := headers(bearer(iss.sign("k1", stdClaims("alice"))), HeaderOriginalMethod, "GET", HeaderOriginalURI, "https://bank.test/accounts/acc-alice/statements?x=1")
	if res, body := send(t, http.MethodGet, hs.URL+DefaultNginxPath, h); res.StatusCode != http.StatusOK {
		t.Errorf("absolute URI: status %d: %s", res.StatusCode, body)
	}
	if res, _ := send(t, http.MethodGet, hs.URL+"/elsewhere", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: status %d", res.StatusCode)
	}
}

func TestUnmatchedAllow(t *testing.T) {
	ev := &fakeEvaluator{}
	hs, _ := newTestGateway(t, ev, func(c *Config) { c.Unmatched = UnmatchedAllow })
	for _, a := range adapters {
		res, body := a.do(t, hs.URL, "GET", "/public/rates", http.Header{"X-Authz-Subject": {"mallory"}})
		if res.StatusCode != http.StatusOK || res.Header.Get(HeaderDecisionID) == "" {
			t.Errorf("%s: status %d: %s", a.name, res.StatusCode, body)
		}
		if got, ok := res.Header["X-Authz-Subject"]; !ok || got[0] != "" {
			t.Errorf("%s: subject header %q: want it present and empty, to overwrite the client's", a.name, got)
		}
		// A non-canonical path is refused even so.
		if res, _ := a.do(t, hs.URL, "GET", "/public/../accounts/acc-bob", nil); res.StatusCode != http.StatusForbidden {
			t.Errorf("%s: dot segments: status %d", a.name, res.StatusCode)
		}
	}
	if n := len(ev.requests()); n != 0 {
		t.Errorf("%d evaluations for unmatched requests", n)
	}
}

func TestTrustedHeaderSubject(t *testing.T) {
	ev := &fakeEvaluator{}
	hs, _ := newTestGateway(t, ev, func(c *Config) {
		c.Subject = SubjectConfig{Header: "X-User-Id", OnBehalfOfHeader: "X-Acting-For"}
	})
	tests := []struct {
		name   string
		header http.Header
		status int
		obo    any
	}{
		{"header", http.Header{"X-User-Id": {"alice"}}, 200, nil},
		{"acting for", http.Header{"X-User-Id": {"bob"}, "X-Acting-For": {"alice"}}, 200, map[string]any{"type": "user", "id": "alice"}},
		{"missing", nil, 401, nil},
		{"empty", http.Header{"X-User-Id": {" "}}, 401, nil},
		{"twice", http.Header{"X-User-Id": {"alice", "bob"}}, 401, nil},
		{"a bearer token does not count", bearer("whatever"), 401, nil},
	}
	for _, a := range adapters {
		for _, tt := range tests {
			t.Run(a.name+"/"+tt.name, func(t *testing.T) {
				before := len(ev.requests())
				res, body := a.do(t, hs.URL, "GET", "/accounts/acc-alice/statements", tt.header)
				if res.StatusCode != tt.status {
					t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, body)
				}
				if tt.status != 200 {
					return
				}
				r := ev.requests()[before]
				if got := r.Context[pdp.ContextOnBehalfOf]; !reflect.DeepEqual(got, tt.obo) {
					t.Errorf("on_behalf_of %v, want %v", got, tt.obo)
				}
				if res.Header.Get("X-Authz-Subject") != r.Subject.ID {
					t.Errorf("subject header %q, subject %q", res.Header.Get("X-Authz-Subject"), r.Subject.ID)
				}
			})
		}
	}
}

func TestHeaderSafe(t *testing.T) {
	got := headerSafe([]string{"a_b", "", "x\r\ny", "ü", "urn:x:1.0/y"})
	if got != "a_b,x__y,_,urn:x:1.0/y" {
		t.Errorf("headerSafe = %q", got)
	}
}
