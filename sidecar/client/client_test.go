package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/authzen"
	"github.com/ciampdp/pdp/sidecar/client"
	"github.com/ciampdp/pdp/sidecar/internal/pdptest"
)

// newClient starts the real central PDP and returns a client of it.
func newClient(t *testing.T, opts pdptest.Options, copts ...client.Option) (*client.Client, *pdptest.Server) {
	t.Helper()
	srv := pdptest.Start(t, opts)
	c, err := client.New(srv.URL, append([]client.Option{client.WithAPIKey(pdptest.APIKey)}, copts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

func user(id string) client.Entity    { return client.Entity{Type: "user", ID: id} }
func account(id string) client.Entity { return client.Entity{Type: "account", ID: id} }
func act(name string) client.Action   { return client.Action{Name: name} }

func TestEvaluate(t *testing.T) {
	c, _ := newClient(t, pdptest.Options{})
	ctx := context.Background()
	tests := []struct {
		name                           string
		req                            client.Request
		allowed                        bool
		reasons, policies, obligations []string
	}{
		{name: "owner views", req: client.Request{Subject: user("alice"), Action: act("view_statements"), Resource: account("acc-alice")},
			allowed: true, policies: []string{"owner-views"}},
		{name: "stranger views", req: client.Request{Subject: user("bob"), Action: act("view_statements"), Resource: account("acc-alice")},
			reasons: []string{"not_permitted"}},
		{name: "acting for the owner", req: client.Request{Subject: user("bob"), Action: act("view_statements"), Resource: account("acc-alice"),
			Context: map[string]any{"on_behalf_of": map[string]any{"type": "user", "id": "alice"}}},
			allowed: true, policies: []string{"bob-views-for-alice"}},
		{name: "small payment", req: client.Request{Subject: user("alice"), Action: act("make_payment"), Resource: account("acc-alice"),
			Context: map[string]any{"amount": 250, "currency": "EUR"}},
			allowed: true, policies: []string{"owner-pays"}},
		{name: "big payment", req: client.Request{Subject: user("alice"), Action: act("make_payment"), Resource: account("acc-alice"),
			Context: map[string]any{"amount": 1500, "currency": "EUR"}},
			reasons: []string{"amount_too_high"}, policies: []string{"big-payment"}, obligations: []string{"step_up_authentication"}},
		{name: "unknown action", req: client.Request{Subject: user("alice"), Action: act("close_account"), Resource: account("acc-alice")},
			reasons: []string{"unknown_action"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := c.Evaluate(ctx, tt.req)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if d.Allowed != tt.allowed {
				t.Fatalf("allowed %v, want %v (reasons %q)", d.Allowed, tt.allowed, d.Reasons)
			}
			if d.DecisionID == "" || d.PolicyVersion == "" {
				t.Errorf("decision id %q, policy version %q", d.DecisionID, d.PolicyVersion)
			}
			for _, f := range []struct {
				name      string
				got, want []string
			}{{"reasons", d.Reasons, tt.reasons}, {"policies", d.Policies, tt.policies}, {"obligations", d.Obligations, tt.obligations}} {
				if len(f.got) != 0 || len(f.want) != 0 {
					if !slices.Equal(f.got, f.want) {
						t.Errorf("%s %q, want %q", f.name, f.got, f.want)
					}
				}
			}
			for _, r := range tt.reasons {
				if !d.HasReason(r) {
					t.Errorf("HasReason(%q) false", r)
				}
			}
			if len(d.Context) == 0 {
				t.Error("raw context missing")
			}
		})
	}
}

func TestEvaluateBatch(t *testing.T) {
	c, _ := newClient(t, pdptest.Options{})
	ctx := context.Background()
	alice, view := user("alice"), act("view_statements")
	items := func(ids ...string) []client.Evaluation {
		var out []client.Evaluation
		for _, id := range ids {
			r := account(id)
			out = append(out, client.Evaluation{Resource: &r})
		}
		return out
	}
	pay := act("make_payment")
	tests := []struct {
		name     string
		batch    client.BatchRequest
		want     []bool
		reasonAt map[int]string
	}{
		{"execute all", client.BatchRequest{Defaults: client.Evaluation{Subject: &alice, Action: &view},
			Evaluations: items("acc-alice", "acc-bob", "acc-alice")}, []bool{true, false, true}, map[int]string{1: "not_permitted"}},
		{"explicit execute all", client.BatchRequest{Defaults: client.Evaluation{Subject: &alice, Action: &view},
			Evaluations: items("acc-alice", "acc-bob"), Semantic: client.ExecuteAll}, []bool{true, false}, nil},
		{"deny on first deny", client.BatchRequest{Defaults: client.Evaluation{Subject: &alice, Action: &view},
			Evaluations: items("acc-alice", "acc-bob", "acc-alice"), Semantic: client.DenyOnFirstDeny}, []bool{true, false}, nil},
		{"permit on first permit", client.BatchRequest{Defaults: client.Evaluation{Subject: &alice, Action: &view},
			Evaluations: items("acc-bob", "acc-alice", "acc-bob"), Semantic: client.PermitOnFirstPermit}, []bool{false, true}, nil},
		{"item overrides the default action and context", client.BatchRequest{
			Defaults: client.Evaluation{Subject: &alice, Action: &view, Context: map[string]any{"amount": 5000}},
			Evaluations: []client.Evaluation{
				{Resource: &client.Entity{Type: "account", ID: "acc-alice"}},
				{Action: &pay, Resource: &client.Entity{Type: "account", ID: "acc-alice"}},
				{Action: &pay, Resource: &client.Entity{Type: "account", ID: "acc-alice"}, Context: map[string]any{"amount": 10}},
			}}, []bool{true, false, true}, map[int]string{1: "amount_too_high"}},
		{"incomplete item is a deny, not an error", client.BatchRequest{Defaults: client.Evaluation{Subject: &alice, Action: &view},
			Evaluations: []client.Evaluation{{Resource: &client.Entity{Type: "account", ID: "acc-alice"}}, {}}},
			[]bool{true, false}, map[int]string{1: "invalid_input"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := c.EvaluateBatch(ctx, tt.batch)
			if err != nil {
				t.Fatalf("EvaluateBatch: %v", err)
			}
			got := make([]bool, len(ds))
			for i, d := range ds {
				got[i] = d.Allowed
				if d.DecisionID == "" {
					t.Errorf("item %d has no decision id", i)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("decisions %v, want %v", got, tt.want)
			}
			for i, r := range tt.reasonAt {
				if !ds[i].HasReason(r) {
					t.Errorf("item %d reasons %q, want %q", i, ds[i].Reasons, r)
				}
			}
		})
	}
	if _, err := c.EvaluateBatch(ctx, client.BatchRequest{Defaults: client.Evaluation{Subject: &alice}}); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("empty batch: err = %v, want ErrBadRequest", err)
	}
	if _, err := c.EvaluateBatch(ctx, client.BatchRequest{Evaluations: items("a"), Semantic: "first_come"}); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("unknown semantic: err = %v, want ErrBadRequest", err)
	}
}

func TestSearch(t *testing.T) {
	c, _ := newClient(t, pdptest.Options{})
	ctx := context.Background()
	ids := func(es []client.Entity) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}

	subj, err := c.SearchSubjects(ctx, client.SearchRequest{Subject: client.Entity{Type: "user", ID: "ignored"},
		Action: act("view_statements"), Resource: account("acc-alice")})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(subj.Results); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("subjects %q, want [alice]", got)
	}
	subj, err = c.SearchSubjects(ctx, client.SearchRequest{Subject: client.Entity{Type: "user"},
		Action: act("view_statements"), Resource: account("acc-alice"),
		Context: map[string]any{"on_behalf_of": map[string]any{"type": "user", "id": "alice"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(subj.Results); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Errorf("subjects acting for alice %q, want [alice bob]", got)
	}

	res, err := c.SearchResources(ctx, client.SearchRequest{Subject: user("bob"), Action: act("view_statements"),
		Resource: client.Entity{Type: "account"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(res.Results); !slices.Equal(got, []string{"acc-bob"}) {
		t.Errorf("resources %q, want [acc-bob]", got)
	}

	acts, err := c.SearchActions(ctx, client.SearchRequest{Subject: user("alice"), Action: act("sent-but-ignored"), Resource: account("acc-alice")})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range acts.Results {
		names = append(names, a.Name)
	}
	if !slices.Equal(names, []string{"make_payment", "view_statements"}) {
		t.Errorf("actions %q", names)
	}

	// Unknown type: empty, not an error.
	none, err := c.SearchResources(ctx, client.SearchRequest{Subject: user("alice"), Action: act("view_statements"), Resource: client.Entity{Type: "spaceship"}})
	if err != nil || none.Results == nil || len(none.Results) != 0 {
		t.Errorf("unknown type: %+v, %v", none, err)
	}

	// Paging: one action per page.
	q := client.SearchRequest{Subject: user("alice"), Resource: account("acc-alice"), Page: &client.PageRequest{Limit: 1}}
	var paged []string
	for range 5 {
		p, err := c.SearchActions(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if p.Page == nil {
			t.Fatal("no page in a paged answer")
		}
		for _, a := range p.Results {
			paged = append(paged, a.Name)
		}
		if p.Page.NextToken == "" {
			break
		}
		q.Page = &client.PageRequest{Limit: 1, Token: p.Page.NextToken}
	}
	if !slices.Equal(paged, names) {
		t.Errorf("paged actions %q, want %q", paged, names)
	}
}

// TestErrors checks the typed errors, from the real server wherever it
// can give them.
func TestErrors(t *testing.T) {
	ctx := context.Background()
	good := client.Request{Subject: user("alice"), Action: act("view_statements"), Resource: account("acc-alice")}
	real := func(opts pdptest.Options, copts ...client.Option) *client.Client {
		c, _ := newClient(t, opts, copts...)
		return c
	}
	stub := func(status int, body string, delay time.Duration) *client.Client {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if delay > 0 {
				select {
				case <-time.After(delay):
				case <-r.Context().Done():
				}
			}
			w.Header().Set("X-Request-ID", "req-1")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(hs.Close)
		c, err := client.New(hs.URL, client.WithTimeout(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	closed := func() *client.Client {
		hs := httptest.NewServer(http.NotFoundHandler())
		url := hs.URL
		hs.Close()
		c, _ := client.New(url)
		return c
	}
	big := good
	big.Subject.Properties = map[string]any{"pad": strings.Repeat("x", 2048)}
	noID := good
	noID.Subject.ID = ""

	tests := []struct {
		name     string
		c        *client.Client
		req      client.Request
		sentinel error
		status   int    // 0: not an APIError
		message  string // substring of APIError.Message
	}{
		{"400 from the server", real(pdptest.Options{}), noID, client.ErrBadRequest, 400, "subject.id is required"},
		{"401 wrong key", real(pdptest.Options{}, client.WithAPIKey("wrong")), good, client.ErrUnauthorized, 401, "missing or invalid API key"},
		{"413 body too large", real(pdptest.Options{BodyLimit: 512}), big, client.ErrTooLarge, 413, "too large"},
		{"503 no policy loaded", real(pdptest.Options{NotReady: true}), good, client.ErrUnavailable, 503, "no valid policy version"},
		{"403 from a proxy", stub(403, `{"error":"blocked by waf"}`, 0), good, client.ErrForbidden, 403, "blocked by waf"},
		{"502 plain text", stub(502, "bad gateway\n", 0), good, client.ErrUnavailable, 502, "bad gateway"},
		{"500", stub(500, `{"error":"internal error"}`, 0), good, nil, 500, "internal error"},
		{"unreachable", closed(), good, client.ErrUnavailable, 0, ""},
		{"timeout", stub(200, `{"decision":true}`, time.Second), good, client.ErrUnavailable, 0, ""},
		{"not a decision", stub(200, `{"decision":"yes"}`, 0), good, client.ErrInvalidResponse, 0, ""},
		{"no decision", stub(200, `{"context":{}}`, 0), good, client.ErrInvalidResponse, 0, ""},
		{"not JSON", stub(200, `<html>`, 0), good, client.ErrInvalidResponse, 0, ""},
		{"bad consistency token", real(pdptest.Options{}), func() client.Request { r := good; r.ConsistencyToken = "a\r\nb"; return r }(),
			client.ErrBadRequest, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.c.Evaluate(ctx, tt.req)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("err = %v, want %v", err, tt.sentinel)
			}
			for _, other := range []error{client.ErrBadRequest, client.ErrUnauthorized, client.ErrForbidden, client.ErrTooLarge, client.ErrUnavailable, client.ErrInvalidResponse} {
				if other != tt.sentinel && errors.Is(err, other) {
					t.Errorf("err = %v also matches %v", err, other)
				}
			}
			var ae *client.APIError
			if tt.status == 0 {
				if errors.As(err, &ae) {
					t.Errorf("unexpected APIError %v", ae)
				}
				return
			}
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want an *APIError", err)
			}
			if ae.StatusCode != tt.status || !strings.Contains(ae.Message, tt.message) {
				t.Errorf("APIError %d %q, want %d containing %q", ae.StatusCode, ae.Message, tt.status, tt.message)
			}
			if ae.RequestID == "" {
				t.Error("no request id")
			}
		})
	}
	if _, err := client.New("localhost:8181"); err == nil {
		t.Error("a base URL without scheme was accepted")
	}
}

// recorder records the headers of the requests the server got.
type recorder struct {
	mu      sync.Mutex
	headers []http.Header
}

func (r *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.headers = append(r.headers, req.Header.Clone())
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	})
}

func (r *recorder) last() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.headers[len(r.headers)-1]
}

func TestHeaders(t *testing.T) {
	rec := &recorder{}
	c, _ := newClient(t, pdptest.Options{Wrap: rec.wrap}, client.WithUserAgent("bank-app/2"))
	req := client.Request{Subject: user("alice"), Action: act("view_statements"), Resource: account("acc-alice")}
	ctx := context.Background()
	tests := []struct {
		name      string
		ctx       context.Context
		reqToken  string
		wantToken string
	}{
		{"none", ctx, "", ""},
		{"from the context", client.WithConsistencyToken(ctx, "GhUKEzE3MzI="), "", "GhUKEzE3MzI="},
		{"the request's wins", client.WithConsistencyToken(ctx, "old"), "new", "new"},
		{"on the request", ctx, "opaque/+=token", "opaque/+=token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req
			r.ConsistencyToken = tt.reqToken
			if _, err := c.Evaluate(tt.ctx, r); err != nil {
				t.Fatal(err)
			}
			h := rec.last()
			if got := h.Get(client.HeaderConsistencyToken); got != tt.wantToken {
				t.Errorf("token header %q, want %q", got, tt.wantToken)
			}
			if _, present := h[http.CanonicalHeaderKey(client.HeaderConsistencyToken)]; present != (tt.wantToken != "") {
				t.Errorf("token header present = %v", present)
			}
			if h.Get("Authorization") != "Bearer "+pdptest.APIKey || h.Get("User-Agent") != "bank-app/2" ||
				h.Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", h)
			}
		})
	}
	// Batch and search carry it too.
	tctx := client.WithConsistencyToken(ctx, "t-batch")
	alice := user("alice")
	acc := account("acc-alice")
	view := act("view_statements")
	if _, err := c.EvaluateBatch(tctx, client.BatchRequest{Defaults: client.Evaluation{Subject: &alice, Action: &view}, Evaluations: []client.Evaluation{{Resource: &acc}}}); err != nil {
		t.Fatal(err)
	}
	if got := rec.last().Get(client.HeaderConsistencyToken); got != "t-batch" {
		t.Errorf("batch token %q", got)
	}
	if _, err := c.SearchActions(ctx, client.SearchRequest{Subject: alice, Resource: acc, ConsistencyToken: "t-search"}); err != nil {
		t.Fatal(err)
	}
	if got := rec.last().Get(client.HeaderConsistencyToken); got != "t-search" {
		t.Errorf("search token %q", got)
	}
}

// TestWireMatchesServer: what the client sends decodes, with the server's
// own decoder, to the request the client meant.
func TestWireMatchesServer(t *testing.T) {
	req := client.Request{
		Subject:  client.Entity{Type: "user", ID: "bob", Properties: map[string]any{"role": "advisor"}},
		Action:   client.Action{Name: "make_payment", Properties: map[string]any{"channel": "app"}},
		Resource: client.Entity{Type: "account", ID: "acc-alice"},
		Context:  map[string]any{"amount": json.Number("250"), "on_behalf_of": map[string]any{"type": "user", "id": "alice"}},
	}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := authzen.DecodeEvaluation(body)
	if err != nil {
		t.Fatalf("server decoder: %v (%s)", err, body)
	}
	if got.Subject.ID != "bob" || got.Subject.Properties["role"] != "advisor" || got.Action.Properties["channel"] != "app" ||
		got.Resource.ID != "acc-alice" || got.Context["amount"] != json.Number("250") ||
		!reflect.DeepEqual(got.Context["on_behalf_of"], map[string]any{"type": "user", "id": "alice"}) {
		t.Errorf("decoded %+v", got)
	}
}
