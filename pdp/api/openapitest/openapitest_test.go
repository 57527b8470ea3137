package openapitest_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/api/openapitest"
)

const (
	goodEval   = `{"subject":{"type":"user","id":"alice"},"action":{"name":"view"},"resource":{"type":"account","id":"a"}}`
	badEval    = `{"subject":{"type":"user"},"action":{"name":"view"},"resource":{"type":"account","id":"a"}}`
	goodAnswer = `{"decision":true,"context":{"decision_id":"d","policy_version":"sha256:x","policies":[],"reasons":[],"obligations":[]}}`
	badAnswer  = `{"allowed":true}`
	errAnswer  = `{"error":"subject.id is required"}`
)

// TestCheck: the contract's rules, one exchange each.
func TestCheck(t *testing.T) {
	v, err := openapitest.New(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, method, path, reqBody string
		status                      int
		ctype, resBody              string
		wantErr                     string // "" passes
	}{
		{"a valid evaluation", "POST", "/access/v1/evaluation", goodEval, 200, "application/json", goodAnswer, ""},
		{"charset in the content type", "POST", "/access/v1/evaluation", goodEval, 200, "application/json; charset=UTF-8", goodAnswer, ""},
		{"an answer without decision", "POST", "/access/v1/evaluation", goodEval, 200, "application/json", badAnswer, "response"},
		{"an accepted request that breaks the document", "POST", "/access/v1/evaluation", badEval, 200, "application/json", goodAnswer, "request"},
		{"a refused request is not checked, its error is", "POST", "/access/v1/evaluation", badEval, 400, "application/json", errAnswer, ""},
		{"an error that is not an error object", "POST", "/access/v1/evaluation", badEval, 400, "application/json", `{"message":"no"}`, "response"},
		{"an undocumented status with success", "POST", "/access/v1/evaluation", goodEval, 201, "application/json", goodAnswer, "response"},
		{"under a base path", "POST", "/tenant-a/access/v1/evaluation", goodEval, 200, "application/json", goodAnswer, ""},
		{"under a base path, broken", "POST", "/tenant-a/access/v1/evaluation", goodEval, 200, "application/json", badAnswer, "response"},
		{"a tenant path with slashes", "GET", "/.well-known/authzen-configuration/pdp/t", "", 200, "application/json",
			`{"policy_decision_point":"http://h/pdp/t","access_evaluation_endpoint":"http://h/pdp/t/access/v1/evaluation"}`, ""},
		{"an unknown path answered 404", "GET", "/nowhere", "", 404, "application/json", `{"error":"not found"}`, ""},
		{"an unknown path answered 200", "GET", "/nowhere", "", 200, "application/json", `{}`, "no operation"},
		{"text: the metrics", "GET", "/metrics", "", 200, "text/plain; version=0.0.4; charset=utf-8", "# HELP x\n", ""},
		{"a path parameter", "GET", "/v1/delegations/poa-1", "", 404, "application/json", errAnswer, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(c.method, "http://127.0.0.1:8080"+c.path, strings.NewReader(c.reqBody))
			if c.reqBody != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			err := v.Check(context.Background(), openapitest.Exchange{
				Request: req, RequestBody: []byte(c.reqBody), Status: c.status,
				Header: http.Header{"Content-Type": {c.ctype}}, ResponseBody: []byte(c.resBody),
			})
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("Check: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("Check: %v, want an error about %q", err, c.wantErr)
			}
		})
	}
}

// TestTransport: the round tripper checks only the servers it is told to,
// and fails a round trip whose answer breaks the document.
func TestTransport(t *testing.T) {
	v, err := openapitest.New(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, c := range []struct {
		name    string
		checked bool
		path    string
		wantErr error
	}{
		{"checked, documented", true, "/healthz", nil},
		{"checked, undocumented", true, "/v1/what", openapitest.ErrUndocumented},
		{"not checked", false, "/v1/what", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			client := &http.Client{Transport: &openapitest.Transport{Validator: v, Checked: func(h string) bool { return c.checked && h == host }}}
			res, err := client.Get(srv.URL + c.path)
			if err == nil {
				res.Body.Close()
			}
			if !errors.Is(err, c.wantErr) && (c.wantErr != nil || err != nil) {
				t.Errorf("GET %s: %v, want %v", c.path, err, c.wantErr)
			}
		})
	}
}
