package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

// TestOpenAPISecurityMatchesTheServer: the document's security
// requirements are what the server enforces. With keys configured (the
// Northbank example), a request without credentials to an operation that
// needs an application key is answered 401, one that needs an auditor key
// 401 or 403, and one that needs none is not refused for want of a key.
func TestOpenAPISecurityMatchesTheServer(t *testing.T) {
	cfg := northbankConfig(t.TempDir())
	cfg.HTTP.NoopEndpoint = true
	cfg.Auth.APIKeys = []APIKey{{Application: "mobile-banking", SHA256: sha("app-key")}}
	cfg.Auth.AuditorKeys = []APIKey{{Application: "internal-audit", SHA256: sha("auditor-key")}}
	s, err := Open(context.Background(), cfg, quietOptions())
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, s)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	var doc struct {
		Security []map[string][]string                      `json:"security"`
		Paths    map[string]map[string]openAPIOperationAuth `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`\{[^}]+\}`)
	n := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			security := doc.Security
			if op.Security != nil {
				security = *op.Security
			}
			scheme := ""
			if len(security) > 0 {
				for name := range security[0] {
					scheme = name
				}
			}
			url := "http://" + s.Addr().String() + param.ReplaceAllString(path, "x")
			var body io.Reader
			if method == "post" {
				body = strings.NewReader("{}")
			}
			req, err := http.NewRequest(strings.ToUpper(method), url, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			n++
			switch scheme {
			case "":
				if res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden {
					t.Errorf("%s %s: the document says no key is needed, the server answers %d", method, path, res.StatusCode)
				}
			case "apiKey":
				if res.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s %s: the document asks for an application key, the server answers %d without one", method, path, res.StatusCode)
				}
			case "auditorKey":
				if res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusForbidden {
					t.Errorf("%s %s: the document asks for an auditor key, the server answers %d without one", method, path, res.StatusCode)
				}
			default:
				t.Errorf("%s %s: unknown security scheme %q", method, path, scheme)
			}
		}
	}
	if n < 30 {
		t.Errorf("only %d operations tried", n)
	}
}

// openAPIOperationAuth is the part of an operation the security test
// reads: nil Security means the document's default.
type openAPIOperationAuth struct {
	Security *[]map[string][]string `json:"security"`
}
