package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp/delegation"
)

// TestDelegationAdmin checks who may use the delegation admin API, over a
// real delegation service on a real file store (no projection).
func TestDelegationAdmin(t *testing.T) {
	st, err := delegation.OpenFile(filepath.Join(t.TempDir(), "d.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc := delegation.NewService(delegation.Config{Store: st, RegisterApplications: []string{"backoffice"}})
	keys := map[string]string{}
	for _, app := range []string{"backoffice", "mobile-banking", "budget-app"} {
		sum := sha256.Sum256([]byte("key-" + app))
		keys[hex.EncodeToString(sum[:])] = app
	}
	cfg := Config{APIKeys: keys, DelegationAdmins: map[string]bool{"backoffice": true, "mobile-banking": true}}
	srv, err := New(cfg, Deps{Decider: &fakeDecider{}, Policies: loadedPolicies(), Registry: prometheus.NewRegistry(), Delegations: svc})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(checkedByContract(t, srv.Handler()))
	t.Cleanup(hs.Close)
	send := func(app, method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if app != "" {
			req.Header.Set("Authorization", "Bearer key-"+app)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m
	}
	guardian := `{"actor":{"type":"user","id":"registrar"},"principal":{"type":"user","id":"carol"},"agent":{"type":"user","id":"dave"},
		"basis":"statutory_guardian","source":"register","scope":["view_statements"],"valid_until":"2040-06-15T00:00:00Z"}`
	poa := `{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"bob"},
		"basis":"power_of_attorney","source":"self_declared","scope":["view_statements"],"valid_until":"2041-01-01T00:00:00Z"}`

	tests := []struct {
		name, app, method, path, body string
		code                          int
	}{
		{"no credential", "", http.MethodPost, "/v1/delegations", poa, http.StatusUnauthorized},
		{"an application that may not administer", "budget-app", http.MethodPost, "/v1/delegations", poa, http.StatusForbidden},
		{"an application that may not list either", "budget-app", http.MethodGet, "/v1/delegations?principal=user:alice", "", http.StatusForbidden},
		{"register-sourced from a non-register application", "mobile-banking", http.MethodPost, "/v1/delegations", guardian, http.StatusForbidden},
		{"the application never comes from the body", "mobile-banking", http.MethodPost, "/v1/delegations",
			strings.Replace(poa, `"actor"`, `"by":{"application":"backoffice"},"actor"`, 1), http.StatusBadRequest},
		{"a change without an actor", "mobile-banking", http.MethodPost, "/v1/delegations/x/accept", `{}`, http.StatusBadRequest},
		{"a change with unknown fields", "mobile-banking", http.MethodPost, "/v1/delegations/x/accept", `{"actor":{"type":"user","id":"bob"},"x":1}`, http.StatusBadRequest},
		{"unknown id", "mobile-banking", http.MethodPost, "/v1/delegations/nope/accept", `{"actor":{"type":"user","id":"bob"}}`, http.StatusNotFound},
		{"an unknown list filter", "mobile-banking", http.MethodGet, "/v1/delegations?owner=user:alice", "", http.StatusBadRequest},
		{"a malformed list filter", "mobile-banking", http.MethodGet, "/v1/delegations?principal=alice", "", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := send(tc.app, tc.method, tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("status %d %v, want %d", code, body, tc.code)
			}
			if msg, _ := body["error"].(string); msg == "" {
				t.Fatalf("no error message: %v", body)
			}
		})
	}

	t.Run("a register records a guardian, active at once, under its own name", func(t *testing.T) {
		code, body := send("backoffice", http.MethodPost, "/v1/delegations", guardian)
		d, _ := body["delegation"].(map[string]any)
		by, _ := d["created_by"].(map[string]any)
		if code != http.StatusCreated || d["status"] != "active" || by["application"] != "backoffice" {
			t.Fatalf("%d %v", code, body)
		}
	})
	t.Run("offer and accept through the mobile app", func(t *testing.T) {
		code, body := send("mobile-banking", http.MethodPost, "/v1/delegations", poa)
		d, _ := body["delegation"].(map[string]any)
		if code != http.StatusCreated || d["status"] != "offered" {
			t.Fatalf("offer: %d %v", code, body)
		}
		id, _ := d["id"].(string)
		if code, body = send("mobile-banking", http.MethodPost, "/v1/delegations/"+id+"/accept", `{"actor":{"type":"user","id":"alice"}}`); code != http.StatusForbidden {
			t.Fatalf("the principal accepting: %d %v, want 403", code, body)
		}
		code, body = send("mobile-banking", http.MethodPost, "/v1/delegations/"+id+"/accept", `{"actor":{"type":"user","id":"bob"}}`)
		if d, _ = body["delegation"].(map[string]any); code != http.StatusOK || d["status"] != "active" {
			t.Fatalf("accept: %d %v", code, body)
		}
		if code, body = send("mobile-banking", http.MethodPost, "/v1/delegations/"+id+"/accept", `{"actor":{"type":"user","id":"bob"}}`); code != http.StatusUnprocessableEntity {
			t.Fatalf("accepting twice: %d %v, want 422", code, body)
		}
		// (read by the application that made it: backoffice took no part)
		code, body = send("mobile-banking", http.MethodGet, "/v1/delegations?agent=user:bob", "")
		if list, _ := body["delegations"].([]any); code != http.StatusOK || len(list) != 1 {
			t.Fatalf("list: %d %v", code, body)
		}
	})
}
