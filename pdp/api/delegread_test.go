package api

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp/delegation"
)

// TestDelegationReadsScoped: GET /v1/delegations… answers what the calling
// application may see (the delegation Service's rule): a record it may not
// see is a 404 with the very body of an id that does not exist, a list
// leaves it out, a reader application (not an administrator) reads every
// record, and any other application is refused (403).
func TestDelegationReadsScoped(t *testing.T) {
	st, err := delegation.OpenFile(filepath.Join(t.TempDir(), "d.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc := delegation.NewService(delegation.Config{Store: st, RegisterApplications: []string{"backoffice"},
		ReaderApplications: []string{"audit-desk"},
		NewID:              func() string { return "poa-1" }}) // the one offer without a chosen id (mobile-banking may not choose one)
	keys := map[string]string{}
	for _, app := range []string{"backoffice", "mobile-banking", "advisor-portal", "audit-desk", "budget-app"} {
		sum := sha256.Sum256([]byte("key-" + app))
		keys[hex.EncodeToString(sum[:])] = app
	}
	cfg := Config{APIKeys: keys, DelegationAdmins: map[string]bool{"backoffice": true, "mobile-banking": true, "advisor-portal": true},
		DelegationReaders: map[string]bool{"audit-desk": true}}
	srv, err := New(cfg, Deps{Decider: &fakeDecider{}, Policies: loadedPolicies(), Registry: prometheus.NewRegistry(), Delegations: svc})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(checkedByContract(t, srv.Handler()))
	t.Cleanup(hs.Close)
	send := func(app, method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer key-"+app)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := send("mobile-banking", http.MethodPost, "/v1/delegations", `{"actor":{"type":"user","id":"alice"},
		"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"bob"},"basis":"power_of_attorney",
		"source":"self_declared","scope":["view_statements"],"valid_until":"2041-01-01T00:00:00Z"}`); code != http.StatusCreated {
		t.Fatalf("offer: %d %s", code, body)
	}
	if code, body := send("backoffice", http.MethodPost, "/v1/delegations", `{"id":"guardian-1","actor":{"type":"user","id":"registrar"},
		"principal":{"type":"user","id":"carol"},"agent":{"type":"user","id":"dave"},"basis":"statutory_guardian",
		"source":"register","scope":["view_statements"],"valid_until":"2040-06-15T00:00:00Z"}`); code != http.StatusCreated {
		t.Fatalf("guardian: %d %s", code, body)
	}
	_, missing := send("advisor-portal", http.MethodGet, "/v1/delegations/poa-2", "")
	for _, tc := range []struct {
		name, app, path string
		code            int
		want            string // in the body
	}{
		{"the application that made it reads it", "mobile-banking", "/v1/delegations/poa-1", 200, `"id":"poa-1"`},
		{"it lists it", "mobile-banking", "/v1/delegations?principal=user:alice", 200, `"id":"poa-1"`},
		{"not a register-sourced guardian it took no part in", "mobile-banking", "/v1/delegations/guardian-1", 404, ""},
		{"nor in a list", "mobile-banking", "/v1/delegations?agent=user:dave", 200, `{"delegations":[]}`},
		{"the register application reads the guardian", "backoffice", "/v1/delegations/guardian-1", 200, `"id":"guardian-1"`},
		{"not the power of attorney", "backoffice", "/v1/delegations/poa-1", 404, ""},
		{"an administrator that took part in none", "advisor-portal", "/v1/delegations/poa-1", 404, ""},
		{"lists nothing", "advisor-portal", "/v1/delegations?principal=user:alice", 200, `{"delegations":[]}`},
		{"a reader, not an administrator, reads every record", "audit-desk", "/v1/delegations/guardian-1", 200, `"id":"guardian-1"`},
		{"and lists them", "audit-desk", "/v1/delegations?principal=user:alice", 200, `"id":"poa-1"`},
		{"an application that is neither", "budget-app", "/v1/delegations/poa-1", 403, "may not read delegations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := send(tc.app, http.MethodGet, tc.path, "")
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s, want %d with %s", code, body, tc.code, tc.want)
			}
			if code == http.StatusNotFound {
				id := tc.path[strings.LastIndex(tc.path, "/")+1:]
				if body != strings.Replace(missing, "poa-2", id, 1) {
					t.Fatalf("the 404 of a hidden record %q differs from that of a missing one %q", body, missing)
				}
			}
		})
	}
	// A reader changes nothing: reading is all it may do.
	if code, body := send("audit-desk", http.MethodPost, "/v1/delegations/poa-1/revoke", `{"actor":{"type":"user","id":"alice"}}`); code != http.StatusForbidden {
		t.Fatalf("a reader revoking: %d %s, want 403", code, body)
	}
}
