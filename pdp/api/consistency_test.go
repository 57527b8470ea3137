package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp"
)

// tokenDecider records the consistency token each decision was asked with.
type tokenDecider struct {
	fakeDecider
	mu     sync.Mutex
	tokens []string
}

func (d *tokenDecider) Decide(ctx context.Context, req pdp.Request) (pdp.Decision, error) {
	d.mu.Lock()
	d.tokens = append(d.tokens, pdp.ConsistencyToken(ctx))
	d.mu.Unlock()
	return d.fakeDecider.Decide(ctx, req)
}

func (d *tokenDecider) DecideBatch(ctx context.Context, reqs []pdp.Request) ([]pdp.Decision, error) {
	d.mu.Lock()
	d.tokens = append(d.tokens, "batch:"+pdp.ConsistencyToken(ctx))
	d.mu.Unlock()
	return d.fakeDecider.DecideBatch(ctx, reqs)
}

func (d *tokenDecider) taken() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.tokens
	d.tokens = nil
	return out
}

func TestConsistencyTokenHeader(t *testing.T) {
	dec := &tokenDecider{}
	e := &env{t: t, decider: &dec.fakeDecider, policies: loadedPolicies(), reg: prometheus.NewRegistry()}
	srv, err := New(Config{}, Deps{Decider: dec, Policies: e.policies, Registry: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(checkedByContract(t, srv.Handler()))
	t.Cleanup(hs.Close)
	e.srv, e.url = srv, hs.URL

	const token = "GhUKEzE3NjA1NzY1NjQ3ODk0NzQ0MDA="
	one := evalBody(subAlice, actRead, res1)
	two := `{"subject":` + subAlice + `,"action":` + actRead + `,"evaluations":[{"resource":` + res1 + `},{"resource":` + res2 + `}]}`
	for _, tc := range []struct {
		name, path, body, token string
		code                    int
		want                    []string
	}{
		{"evaluation", "/access/v1/evaluation", one, token, http.StatusOK, []string{token}},
		{"batch", "/access/v1/evaluations", two, token, http.StatusOK, []string{"batch:" + token}},
		{"no token", "/access/v1/evaluation", one, "", http.StatusOK, []string{""}},
		{"not base64", "/access/v1/evaluation", one, "not a token!", http.StatusBadRequest, nil},
		{"too long", "/access/v1/evaluation", one, strings.Repeat("A", 1025), http.StatusBadRequest, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := call{path: tc.path, body: tc.body}
			if tc.token != "" {
				c.header = map[string]string{ConsistencyTokenHeader: tc.token}
			}
			res, body := e.do(c)
			if res.StatusCode != tc.code {
				t.Fatalf("%d %s, want %d", res.StatusCode, body, tc.code)
			}
			if tc.code == http.StatusBadRequest {
				errorStatus(t, res, body, http.StatusBadRequest)
				if !strings.Contains(string(body), ConsistencyTokenHeader+" is malformed") {
					t.Errorf("message %s does not name the header", body)
				}
			}
			if got := dec.taken(); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("decided with tokens %q, want %q", got, tc.want)
			}
		})
	}
}
