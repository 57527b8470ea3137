package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestSidecarAPIRequiresCredential ("the enforcement path holds", item 4):
// on TCP the sidecar's AuthZEN API answers only callers that present the
// application's key or the sidecar's local token; health stays open.
func TestSidecarAPIRequiresCredential(t *testing.T) {
	dir := t.TempDir()
	central := startNorthbank(t)
	const key = "demo-key-mobile-banking"
	sc := startSidecar(t, central.URL, key, filepath.Join(dir, "spool"), map[string]string{
		"PDP_SIDECAR_LOCAL_TOKEN": "local-secret-of-mobile-banking",
	})
	search := `{"subject":{"type":"user"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`
	views := `{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`
	batch := `{"evaluations":[` + views + `]}`
	for _, tt := range []struct {
		name, path, body, credential string
		want                         int
	}{
		{"anonymous search", "/access/v1/search/subject", search, "", http.StatusUnauthorized},
		{"anonymous evaluation", "/access/v1/evaluation", views, "", http.StatusUnauthorized},
		{"anonymous batch", "/access/v1/evaluations", batch, "", http.StatusUnauthorized},
		{"search with a wrong key", "/access/v1/search/subject", search, "demo-key-budget-app", http.StatusUnauthorized},
		{"search with the application's key", "/access/v1/search/subject", search, key, http.StatusOK},
		{"evaluation with the local token", "/access/v1/evaluation", views, "local-secret-of-mobile-banking", http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, data, err := postJSON(sc, tt.path, tt.credential, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.want {
				t.Fatalf("%d %s, want %d", code, data, tt.want)
			}
			if code == http.StatusUnauthorized && strings.Contains(string(data), "alice") {
				t.Errorf("a refused answer leaks: %s", data)
			}
		})
	}
	if res, err := http.Get(sc + "/healthz"); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("healthz without a credential: %v %v", res, err)
	} else {
		res.Body.Close()
	}
}
