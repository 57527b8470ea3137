package client_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/sidecar/client"
	"github.com/ciampdp/pdp/sidecar/internal/pdptest"
)

// bankMapper is an application's Mapper: /accounts/{id}/statements (GET)
// and /accounts/{id}/payments (POST, amount in X-Amount), the user in
// X-User (set by the app's own authentication).
func bankMapper(r *http.Request) (client.Request, error) {
	switch r.URL.Path {
	case "/public":
		return client.Request{}, client.ErrSkip
	case "/broken":
		return client.Request{}, errors.New("mapper bug")
	}
	userID := r.Header.Get("X-User")
	if userID == "" {
		return client.Request{}, &client.Rejection{Status: http.StatusUnauthorized, Reasons: []string{"unauthenticated"}}
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 3 || parts[0] != "accounts" {
		return client.Request{}, &client.Rejection{Status: http.StatusForbidden, Reasons: []string{"route_not_found"}}
	}
	req := client.Request{Subject: client.Entity{Type: "user", ID: userID}, Resource: client.Entity{Type: "account", ID: parts[1]}}
	switch parts[2] {
	case "statements":
		req.Action.Name = "view_statements"
	case "payments":
		req.Action.Name = "make_payment"
		n, _ := strconv.Atoi(r.Header.Get("X-Amount"))
		req.Context = map[string]any{"amount": n}
	case "bad":
		req.Subject.ID = "" // a mapping bug the PDP rejects with 400
		req.Action.Name = "view_statements"
	}
	return req, nil
}

func TestMiddleware(t *testing.T) {
	c, _ := newClient(t, pdptest.Options{})
	notReady, _ := newClient(t, pdptest.Options{NotReady: true})
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	down, err := client.New(gone.URL)
	if err != nil {
		t.Fatal(err)
	}
	// next reports what the handler saw.
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := client.DecisionFrom(r.Context())
		w.Header().Set("X-Saw-Decision", strconv.FormatBool(ok && d.Allowed))
		w.Header().Set("X-Saw-Decision-Id", d.DecisionID)
		_, _ = io.WriteString(w, "ok")
	})
	tests := []struct {
		name        string
		c           *client.Client
		method      string
		path        string
		header      map[string]string
		status      int
		sawDecision string // "true", "false" or "" (next not called)
		errCode     string
		reasons     []string
		obligations []string
	}{
		{name: "allowed", c: c, path: "/accounts/acc-alice/statements", header: map[string]string{"X-User": "alice"}, status: 200, sawDecision: "true"},
		{name: "denied", c: c, path: "/accounts/acc-alice/statements", header: map[string]string{"X-User": "bob"},
			status: 403, errCode: "forbidden", reasons: []string{"not_permitted"}},
		{name: "denied with obligation", c: c, method: "POST", path: "/accounts/acc-alice/payments", header: map[string]string{"X-User": "alice", "X-Amount": "1500"},
			status: 403, errCode: "forbidden", reasons: []string{"amount_too_high"}, obligations: []string{"step_up_authentication"}},
		{name: "small payment", c: c, method: "POST", path: "/accounts/acc-alice/payments", header: map[string]string{"X-User": "alice", "X-Amount": "20"},
			status: 200, sawDecision: "true"},
		{name: "skip", c: c, path: "/public", status: 200, sawDecision: "false"},
		{name: "rejected by the mapper", c: c, path: "/accounts/acc-alice/statements", status: 401, errCode: "unauthorized", reasons: []string{"unauthenticated"}},
		{name: "mapper error", c: c, path: "/broken", status: 500, errCode: "internal_error", reasons: []string{}},
		{name: "request the PDP rejects", c: c, path: "/accounts/acc-alice/bad", header: map[string]string{"X-User": "alice"}, status: 500, errCode: "internal_error", reasons: []string{}},
		{name: "PDP unreachable", c: down, path: "/accounts/acc-alice/statements", header: map[string]string{"X-User": "alice"}, status: 503, errCode: "unavailable", reasons: []string{}},
		{name: "PDP not ready", c: notReady, path: "/accounts/acc-alice/statements", header: map[string]string{"X-User": "alice"}, status: 503, errCode: "unavailable", reasons: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			r := httptest.NewRequest(method, tt.path, nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			client.Middleware(tt.c, bankMapper)(next).ServeHTTP(w, r)
			res := w.Result()
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, w.Body)
			}
			if got := res.Header.Get("X-Saw-Decision"); got != tt.sawDecision {
				t.Errorf("handler saw decision %q, want %q", got, tt.sawDecision)
			}
			if tt.sawDecision == "true" && res.Header.Get("X-Saw-Decision-Id") == "" {
				t.Error("handler saw no decision id")
			}
			if tt.errCode == "" {
				return
			}
			var body client.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %s: %v", w.Body, err)
			}
			if body.Error != tt.errCode || !slices.Equal(body.Reasons, tt.reasons) || !slices.Equal(body.Obligations, tt.obligations) {
				t.Errorf("body %+v, want error %q reasons %q obligations %q", body, tt.errCode, tt.reasons, tt.obligations)
			}
			if !strings.Contains(w.Body.String(), `"reasons":[`) {
				t.Errorf("reasons must be an array, never null: %s", w.Body)
			}
			if tt.status == 403 && (body.DecisionID == "" || res.Header.Get(client.HeaderDecisionID) != body.DecisionID) {
				t.Errorf("decision id %q, header %q", body.DecisionID, res.Header.Get(client.HeaderDecisionID))
			}
			if tt.status == 401 && res.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}
