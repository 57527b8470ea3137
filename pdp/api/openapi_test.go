package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/ciampdp/pdp/pdp/api/openapitest"
)

// TestOpenAPIDocumentIsValid: the embedded document loads and validates as
// OpenAPI 3.1 with kin-openapi (every $ref resolves, every schema is a
// JSON Schema 2020-12 schema), and every operation has an id and a
// default (error) response.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" {
				t.Errorf("%s %s: no operationId", method, path)
			}
			if op.Responses.Default() == nil {
				t.Errorf("%s %s: no default (error) response", method, path)
			}
		}
	}
}

// TestOpenAPIServed: GET /openapi.json answers the embedded document,
// without authentication.
func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t, Config{APIKeys: map[string]string{digest("tok"): "app-1"}})
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, OpenAPIPath, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v", doc["openapi"])
	}
}

// contract is the validator every test server of this package checks its
// traffic with (newEnv installs it).
var contract = sync.OnceValues(func() (*openapitest.Validator, error) { return openapitest.New(OpenAPI) })

// checkedByContract wraps h so that every exchange of the test is checked
// against the OpenAPI document; a broken one fails the test.
func checkedByContract(t *testing.T, h http.Handler) http.Handler {
	t.Helper()
	v, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	return v.Middleware(h, t.Errorf)
}
