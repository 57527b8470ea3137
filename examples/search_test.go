package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/policy"
)

// TestCertificationSearch runs the AuthZEN 1.0 certification scenario's
// Search Core and Search Properties checks (S1–S6, ignored ids, paging,
// unknown ids and types, the 400 cases) over HTTP against the real engine
// on the certification example.
func TestCertificationSearch(t *testing.T) {
	b, err := policy.Load(context.Background(), policy.DirsFor("authzen-certification"))
	if err != nil {
		t.Fatal(err)
	}
	engine := pdp.NewEngine(pdp.Components{Bundles: b})
	srv, err := api.New(api.Config{}, api.Deps{Decider: engine, Searcher: engine,
		Policies: fixedStatus{b}, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	post := func(path, body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(ts.URL+path, "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(raw, &out); err != nil {
				t.Fatalf("%s: %v: %s", path, err, raw)
			}
		}
		return resp.StatusCode, out
	}
	names := func(out map[string]any, key string) []string {
		rs, ok := out["results"].([]any)
		if !ok {
			t.Fatalf("results is not an array: %v", out)
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.(map[string]any)[key].(string))
		}
		return got
	}
	const (
		subj = "/access/v1/search/subject"
		res  = "/access/v1/search/resource"
		act  = "/access/v1/search/action"
	)
	tests := []struct {
		name, path, body, key string
		want                  []string
	}{
		{"S1 who can read record-1", subj, `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`, "id", []string{"alice", "bob"}},
		{"S1 with context", subj, `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"context":{"time":"2026-01-01T00:00:00Z"}}`, "id", []string{"alice", "bob"}},
		{"S1 ignores subject.id", subj, `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`, "id", []string{"alice", "bob"}},
		{"S2 what alice can read", res, `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record"}}`, "id", []string{"record-1", "record-2"}},
		{"S2 ignores resource.id", res, `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-2"}}`, "id", []string{"record-1", "record-2"}},
		{"S3 what alice can do on record-1", act, `{"subject":{"type":"user","id":"alice"},"resource":{"type":"record","id":"record-1"}}`, "name", []string{"read", "write"}},
		{"S4 who can write archived record-2", subj, `{"subject":{"type":"user"},"action":{"name":"write"},"resource":{"type":"record","id":"record-2","properties":{"status":"archived"}}}`, "id", []string{"bob"}},
		{"S5 what an admin can write", res, `{"subject":{"type":"user","id":"bob","properties":{"role":"admin"}},"action":{"name":"write"},"resource":{"type":"record"}}`, "id", []string{"record-2"}},
		{"S6 what an admin can do on an archived record", act, `{"subject":{"type":"user","id":"bob","properties":{"role":"admin"}},"resource":{"type":"record","id":"record-2","properties":{"status":"archived"}}}`, "name", []string{"read", "write"}},
		{"unknown id gives no results", act, `{"subject":{"type":"user","id":"nonexistent-user"},"resource":{"type":"record","id":"record-1"}}`, "name", nil},
		{"unknown type gives no results", subj, `{"subject":{"type":"spaceship"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`, "id", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := post(tc.path, tc.body)
			if code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			got := names(out, tc.key)
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Fatalf("results %v lack %q", got, w)
				}
			}
			if tc.want == nil && len(got) != 0 {
				t.Fatalf("results %v, want none", got)
			}
		})
	}

	t.Run("paging", func(t *testing.T) {
		q := `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"page":{"limit":1%s}}`
		code, first := post(subj, fmtPage(q, ""))
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		page := first["page"].(map[string]any)
		token := page["next_token"].(string)
		if token == "" || len(names(first, "id")) != 1 {
			t.Fatalf("first page %v", first)
		}
		code, second := post(subj, fmtPage(q, token))
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		if p := second["page"].(map[string]any); p["next_token"] != "" || len(names(second, "id")) != 1 {
			t.Fatalf("last page %v", second)
		}
		if got := append(names(first, "id"), names(second, "id")...); !slices.Equal(got, []string{"alice", "bob"}) {
			t.Fatalf("pages gave %v", got)
		}
		// A token used with another query is refused.
		if code, _ := post(subj, `{"subject":{"type":"user"},"action":{"name":"write"},"resource":{"type":"record","id":"record-1"},"page":{"limit":1,"token":"`+token+`"}}`); code != http.StatusBadRequest {
			t.Fatalf("foreign token: status %d", code)
		}
	})

	for _, tc := range []struct{ name, path, body string }{
		{"subject search without action", subj, `{"subject":{"type":"user"},"resource":{"type":"record","id":"record-1"}}`},
		{"resource search without subject", res, `{"action":{"name":"read"},"resource":{"type":"record"}}`},
		{"action search without resource", act, `{"subject":{"type":"user","id":"alice"}}`},
		{"subject search whose resource lacks id", subj, `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record"}}`},
		{"resource search whose subject lacks id", res, `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record"}}`},
		{"action search whose subject lacks id", act, `{"subject":{"type":"user"},"resource":{"type":"record","id":"record-1"}}`},
	} {
		t.Run("400: "+tc.name, func(t *testing.T) {
			if code, _ := post(tc.path, tc.body); code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", code)
			}
		})
	}

	t.Run("metadata advertises search", func(t *testing.T) {
		resp, err := http.Get(ts.URL + "/.well-known/authzen-configuration")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var md map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"search_subject_endpoint", "search_resource_endpoint", "search_action_endpoint"} {
			if s, _ := md[k].(string); s == "" {
				t.Errorf("metadata lacks %s: %v", k, md)
			}
		}
	})
}

func fmtPage(q, token string) string {
	if token == "" {
		return sprintf(q, "")
	}
	return sprintf(q, `,"token":"`+token+`"`)
}

func sprintf(format string, a ...any) string { return fmt.Sprintf(format, a...) }
