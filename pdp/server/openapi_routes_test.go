package server

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/ciampdp/pdp/pdp/api"
)

// openAPIParam matches a path parameter in either spelling: echo's :name
// and trailing *, the document's {name}.
var openAPIParam = regexp.MustCompile(`:[^/]+|\{[^/}]+\}|\*`)

// routeKey is "METHOD /path" with every path parameter written {}.
func routeKey(method, path string) string {
	return method + " " + openAPIParam.ReplaceAllString(path, "{}")
}

// documentedRoutes lists the operations of the embedded OpenAPI document.
func documentedRoutes(t *testing.T) map[string]string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	out := map[string]string{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			out[routeKey(strings.ToUpper(method), path)] = strings.ToUpper(method) + " " + path
		}
	}
	return out
}

// TestOpenAPIDocumentsEveryRoute: the server pdp/server builds with every
// feature on (the Northbank example: delegations, consent, the trail and
// its auditor, the change feed, ingest, search; plus the noop endpoint)
// registers exactly the operations the OpenAPI document lists. A route
// added without its operation, or an operation whose route is gone, fails
// here with its name.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	cfg := northbankConfig(t.TempDir())
	cfg.HTTP.NoopEndpoint = true
	s, err := Open(context.Background(), cfg, quietOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e, ok := s.api.Handler().(*echo.Echo)
	if !ok {
		t.Fatalf("the API handler is a %T, not an *echo.Echo", s.api.Handler())
	}
	registered := map[string]string{}
	for _, r := range e.Routes() {
		registered[routeKey(r.Method, r.Path)] = r.Method + " " + r.Path
	}
	documented := documentedRoutes(t)
	var missing, stale []string
	for k, r := range registered {
		if _, ok := documented[k]; !ok {
			missing = append(missing, r)
		}
	}
	for k, op := range documented {
		if _, ok := registered[k]; !ok {
			stale = append(stale, op)
		}
	}
	slices.Sort(missing)
	slices.Sort(stale)
	if len(missing) > 0 {
		t.Errorf("routes the server registers that pdp/api/openapi.json does not document (add an operation for each, with its request and responses):\n%s",
			bullets(missing))
	}
	if len(stale) > 0 {
		t.Errorf("operations pdp/api/openapi.json documents that the server does not register (remove them, or register the route):\n%s",
			bullets(stale))
	}
	if len(registered) < 30 {
		t.Errorf("only %d routes registered: is a feature off in this test's configuration?", len(registered))
	}
}

func bullets(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "  - %s\n", l)
	}
	return b.String()
}

func TestRouteKey(t *testing.T) {
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/v1/delegations/:id", "GET /v1/delegations/{}"},
		{"GET", "/v1/delegations/{id}", "GET /v1/delegations/{}"},
		{"GET", "/.well-known/authzen-configuration/*", "GET /.well-known/authzen-configuration/{}"},
		{"GET", "/.well-known/authzen-configuration/{tenant}", "GET /.well-known/authzen-configuration/{}"},
		{"POST", "/v1/consents/subjects/:subject/history", "POST /v1/consents/subjects/{}/history"},
		{"GET", "/healthz", "GET /healthz"},
	} {
		if got := routeKey(c.method, c.path); got != c.want {
			t.Errorf("routeKey(%s, %s) = %q, want %q", c.method, c.path, got, c.want)
		}
	}
}
