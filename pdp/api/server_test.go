package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/prometheus/client_golang/prometheus"
)

func TestAuthentication(t *testing.T) {
	e := newEnv(t, Config{EnableNoop: true, APIKeys: map[string]string{
		digest("s3cret-token"):                 "todo-app",
		strings.ToUpper(digest("other-token")): "bank-app",
	}})
	single := evalBody(subAlice, actRead, res1)
	batch := `{"subject":` + subAlice + `,"action":` + actRead + `,"evaluations":[{"resource":` + res1 + `},{"resource":` + res2 + `}]}`
	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		auth    string // Authorization header; "" sends none
		status  int
		wantApp string // Application the decider saw, when 200 on a decision
	}{
		{"no header", "", evalPath, single, "", 401, ""},
		{"unknown token", "", evalPath, single, "Bearer nope", 401, ""},
		{"empty bearer", "", evalPath, single, "Bearer ", 401, ""},
		{"basic scheme", "", evalPath, single, "Basic czNjcmV0LXRva2Vu", 401, ""},
		{"bearer token", "", evalPath, single, "Bearer s3cret-token", 200, "todo-app"},
		{"lower-case scheme", "", evalPath, single, "bearer s3cret-token", 200, "todo-app"},
		{"bare token", "", evalPath, single, "s3cret-token", 200, "todo-app"},
		{"upper-case digest in config", "", evalPath, single, "Bearer other-token", 200, "bank-app"},
		{"batch without token", "", evalsPath, batch, "", 401, ""},
		{"batch with token", "", evalsPath, batch, "Bearer other-token", 200, "bank-app"},
		{"single via batch endpoint", "", evalsPath, single, "other-token", 200, "bank-app"},
		{"noop without token", "", NoopPath, single, "", 401, ""},
		{"noop with token", "", NoopPath, single, "s3cret-token", 200, ""},
		{"auth before body checks", "", evalPath, `not json`, "", 401, ""},
		{"policies without token", http.MethodGet, PoliciesPath, "", "", 401, ""},
		{"policies with token", http.MethodGet, PoliciesPath, "", "Bearer s3cret-token", 200, ""},
		{"metadata is public", http.MethodGet, "/.well-known/authzen-configuration", "", "", 200, ""},
		{"healthz is public", http.MethodGet, HealthzPath, "", "", 200, ""},
		{"readyz is public", http.MethodGet, ReadyzPath, "", "", 200, ""},
		{"metrics is public", http.MethodGet, MetricsPath, "", "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.decider.applications())
			c := call{method: tt.method, path: tt.path, body: tt.body}
			if tt.auth != "" {
				c.header = map[string]string{"Authorization": tt.auth}
			}
			res, body := e.do(c)
			if tt.status != http.StatusOK {
				errorStatus(t, res, body, tt.status)
				if got := res.Header.Get("WWW-Authenticate"); got != `Bearer realm="pdp"` {
					t.Errorf("WWW-Authenticate %q", got)
				}
				return
			}
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			if tt.wantApp == "" {
				return
			}
			apps := e.decider.applications()[before:]
			if len(apps) == 0 {
				t.Fatal("nothing decided")
			}
			for _, app := range apps {
				if app != tt.wantApp {
					t.Errorf("decided for application %q, want %q", app, tt.wantApp)
				}
			}
		})
	}
}

func TestNoAuthMeansEmptyApplication(t *testing.T) {
	e := newEnv(t, Config{})
	res, body := e.do(call{path: evalPath, body: evalBody(subAlice, actRead, res1),
		header: map[string]string{"Authorization": "Bearer whatever"}})
	singleDecision(t, res, body)
	if apps := e.decider.applications(); !reflect.DeepEqual(apps, []string{""}) {
		t.Errorf("applications %q, want [\"\"]", apps)
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, Config{BodyLimit: 256, EnableNoop: true})
	small := evalBody(subAlice, actRead, res1)
	big := `{"subject":{"type":"user","id":"alice","properties":{"pad":"` + strings.Repeat("x", 300) + `"}},"action":{"name":"read"},"resource":` + res1 + `}`
	for _, path := range []string{evalPath, evalsPath, NoopPath} {
		t.Run(path, func(t *testing.T) {
			res, body := e.post(path, small)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("small body: status %d: %s", res.StatusCode, body)
			}
			res, body = e.post(path, big)
			errorStatus(t, res, body, http.StatusRequestEntityTooLarge)
		})
	}
	t.Run("chunked body without Content-Length", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			_, _ = io.WriteString(pw, big)
			_ = pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPost, e.url+evalPath, pr)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if req.ContentLength != -1 && req.ContentLength != 0 {
			t.Fatalf("request was not chunked")
		}
		errorStatus(t, res, body, http.StatusRequestEntityTooLarge)
	})
}

func TestNotReady(t *testing.T) {
	e := newEnv(t, Config{})
	e.policies.set(policy.Status{LastError: "bad policy"})

	res, body := e.do(call{method: http.MethodGet, path: ReadyzPath})
	errorStatus(t, res, body, http.StatusServiceUnavailable)
	res, body = e.do(call{method: http.MethodGet, path: HealthzPath})
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"version":"v-test"`) {
		t.Errorf("healthz while not ready: %d %s", res.StatusCode, body)
	}

	e.decider.failWith(fmt.Errorf("engine: %w", pdp.ErrNotReady))
	res, body = e.post(evalPath, evalBody(subAlice, actRead, res1))
	errorStatus(t, res, body, http.StatusServiceUnavailable)
	res, body = e.post(evalsPath, `{"subject":`+subAlice+`,"action":`+actRead+`,"evaluations":[{"resource":`+res1+`}]}`)
	errorStatus(t, res, body, http.StatusServiceUnavailable)

	e.policies.set(loadedPolicies().Status())
	e.decider.failWith(nil)
	res, body = e.do(call{method: http.MethodGet, path: ReadyzPath})
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"policy_version":"fakehash"`) {
		t.Errorf("readyz when loaded: %d %s", res.StatusCode, body)
	}
}

func TestErrorMapping(t *testing.T) {
	e := newEnv(t, Config{})
	e.decider.failWith(errors.New("database password is hunter2"))
	res, body := e.post(evalPath, evalBody(subAlice, actRead, res1))
	errorStatus(t, res, body, http.StatusInternalServerError)
	if strings.Contains(string(body), "hunter2") {
		t.Errorf("internal error leaked to the client: %s", body)
	}
	e.decider.failWith(nil)

	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, evalPath, http.StatusMethodNotAllowed},
		{http.MethodPost, HealthzPath, http.StatusMethodNotAllowed},
		{http.MethodPost, NoopPath, http.StatusNotFound}, // EnableNoop is off
		{http.MethodGet, "/access/v1/evaluation/", http.StatusNotFound},
	}
	for _, tt := range tests {
		res, body := e.do(call{method: tt.method, path: tt.path, body: "{}"})
		errorStatus(t, res, body, tt.status)
	}
}

// panicDecider panics on every call.
type panicDecider struct{ fakeDecider }

func (*panicDecider) Decide(context.Context, pdp.Request) (pdp.Decision, error) { panic("boom") }

func TestPanicIsAnInternalError(t *testing.T) {
	srv, err := New(Config{}, Deps{Decider: &panicDecider{}, Policies: loadedPolicies()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(checkedByContract(t, srv.Handler()))
	defer hs.Close()
	e := &env{t: t, url: hs.URL}
	for range 2 { // the server survives the first
		res, body := e.post(evalPath, evalBody(subAlice, actRead, res1))
		errorStatus(t, res, body, http.StatusInternalServerError)
	}
}

func TestNoop(t *testing.T) {
	e := newEnv(t, Config{EnableNoop: true, BasePath: "/bench"})
	res, body := e.post("/bench"+NoopPath, evalBody(subBob, actWrite, res1))
	if res.StatusCode != http.StatusOK || string(body) != "{\"decision\":true}\n" {
		t.Errorf("noop: %d %q", res.StatusCode, body)
	}
	res, body = e.post("/bench"+NoopPath, evalBody(`"bob"`, actWrite, res1))
	errorStatus(t, res, body, http.StatusBadRequest)
	if len(e.decider.applications()) != 0 {
		t.Error("noop reached the decider")
	}
}

func TestBasePath(t *testing.T) {
	e := newEnv(t, Config{BasePath: "/stores/store-1", PublicURL: "https://pdp.example.com"})
	res, body := e.post("/stores/store-1"+evalPath, evalBody(subAlice, actRead, res1))
	singleDecision(t, res, body)
	res, body = e.post("/stores/store-1"+evalsPath, `{"subject":`+subAlice+`,"action":`+actRead+`,"evaluations":[{"resource":`+res1+`}]}`)
	batchDecisions(t, res, body)
	res, body = e.post(evalPath, evalBody(subAlice, actRead, res1))
	errorStatus(t, res, body, http.StatusNotFound)
	for _, p := range []string{HealthzPath, ReadyzPath, MetricsPath, PoliciesPath, "/.well-known/authzen-configuration"} {
		if res, body := e.do(call{method: http.MethodGet, path: p}); res.StatusCode != http.StatusOK {
			t.Errorf("%s: %d %s", p, res.StatusCode, body)
		}
	}
}

func TestMetadata(t *testing.T) {
	type doc map[string]any
	tests := []struct {
		name   string
		cfg    Config
		path   string
		status int
		want   doc
	}{
		{
			name: "root", cfg: Config{PublicURL: "https://pdp.example.com/"},
			path: "/.well-known/authzen-configuration", status: 200,
			want: doc{
				"policy_decision_point":       "https://pdp.example.com",
				"access_evaluation_endpoint":  "https://pdp.example.com/access/v1/evaluation",
				"access_evaluations_endpoint": "https://pdp.example.com/access/v1/evaluations",
			},
		},
		{
			name: "tenant form", cfg: Config{PublicURL: "https://pdp.example.com", BasePath: "/tenant1"},
			path: "/.well-known/authzen-configuration/tenant1", status: 200,
			want: doc{
				"policy_decision_point":       "https://pdp.example.com/tenant1",
				"access_evaluation_endpoint":  "https://pdp.example.com/tenant1/access/v1/evaluation",
				"access_evaluations_endpoint": "https://pdp.example.com/tenant1/access/v1/evaluations",
			},
		},
		{
			name: "plain form with a base path", cfg: Config{PublicURL: "https://pdp.example.com", BasePath: "/tenant1"},
			path: "/.well-known/authzen-configuration", status: 200,
			want: doc{
				"policy_decision_point":       "https://pdp.example.com/tenant1",
				"access_evaluation_endpoint":  "https://pdp.example.com/tenant1/access/v1/evaluation",
				"access_evaluations_endpoint": "https://pdp.example.com/tenant1/access/v1/evaluations",
			},
		},
		{
			name: "other tenant", cfg: Config{PublicURL: "https://pdp.example.com", BasePath: "/tenant1"},
			path: "/.well-known/authzen-configuration/tenant2", status: 404,
		},
		{
			name: "proxy path in public URL", cfg: Config{PublicURL: "https://gw.example.com/pdp", BasePath: "/t"},
			path: "/.well-known/authzen-configuration/pdp/t", status: 200,
			want: doc{
				"policy_decision_point":       "https://gw.example.com/pdp/t",
				"access_evaluation_endpoint":  "https://gw.example.com/pdp/t/access/v1/evaluation",
				"access_evaluations_endpoint": "https://gw.example.com/pdp/t/access/v1/evaluations",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.cfg)
			// The search demo sends a Content-Type on the GET.
			res, body := e.do(call{method: http.MethodGet, path: tt.path, contentType: "application/json"})
			if tt.status != http.StatusOK {
				errorStatus(t, res, body, tt.status)
				return
			}
			obj := jsonObject(t, res, body)
			var got doc
			_ = json.Unmarshal(body, &got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
			if _, ok := obj["capabilities"]; ok {
				t.Errorf("capabilities present though empty: %s", body)
			}
		})
	}
	t.Run("handler without PublicURL uses the request host", func(t *testing.T) {
		e := newEnv(t, Config{})
		res, body := e.do(call{method: http.MethodGet, path: "/.well-known/authzen-configuration"})
		var got doc
		_ = json.Unmarshal(body, &got)
		if res.StatusCode != 200 || got["policy_decision_point"] != e.url {
			t.Errorf("got %d %s, want policy_decision_point %s", res.StatusCode, body, e.url)
		}
	})
}

func TestPolicyStatusEndpoint(t *testing.T) {
	e := newEnv(t, Config{})
	res, body := e.do(call{method: http.MethodGet, path: PoliciesPath})
	jsonObject(t, res, body)
	var got policy.Status
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if want := e.policies.Status(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, Config{APIKeys: map[string]string{digest("tok"): "app-1"}})
	auth := map[string]string{"Authorization": "Bearer tok"}
	e.do(call{path: evalPath, body: evalBody(subAlice, actRead, res1), header: auth})
	e.do(call{path: evalPath, body: evalBody(subBob, actWrite, res1), header: auth})
	e.do(call{path: evalsPath, header: auth,
		body: `{"subject":` + subAlice + `,"action":` + actWrite + `,"evaluations":[{"resource":` + res1 + `},{"resource":` + res2 + `}]}`})
	e.do(call{path: evalPath, body: `{}`, header: auth})
	e.do(call{method: http.MethodGet, path: "/unknown/route"})
	e.policies.set(policy.Status{Active: policy.Version{Hash: "h2", Commit: "c2"}, Reloads: 7, Failures: 3})

	scrape := func() string {
		res, body := e.do(call{method: http.MethodGet, path: MetricsPath})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("metrics: %d", res.StatusCode)
		}
		return string(body)
	}
	text := scrape()
	for _, want := range []string{
		`pdp_decisions_total{application="app-1",result="allow"} 2`,
		`pdp_decisions_total{application="app-1",result="deny"} 2`,
		`pdp_decision_duration_seconds_bucket{le="5e-06"} 4`,
		`pdp_decision_duration_seconds_count 4`,
		`pdp_http_requests_total{code="200",route="/access/v1/evaluation"} 2`,
		`pdp_http_requests_total{code="200",route="/access/v1/evaluations"} 1`,
		`pdp_http_requests_total{code="400",route="/access/v1/evaluation"} 1`,
		`pdp_policy_info{commit="c2",hash="h2"} 1`,
		`pdp_policy_reloads_total 7`,
		`pdp_policy_reload_failures_total 3`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(text, "/unknown/route") {
		t.Error("unmatched paths must not become route labels")
	}
	// The policy metrics follow the status at scrape time.
	e.policies.set(policy.Status{})
	if text := scrape(); strings.Contains(text, "pdp_policy_info{") {
		t.Error("pdp_policy_info reported with no active version")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"zero value", Config{}, nil},
		{"full", Config{BasePath: "/a/b", PublicURL: "https://pdp.example.com/x", BodyLimit: 10,
			ReadTimeout: time.Second, APIKeys: map[string]string{digest("t"): "app"}}, nil},
		{"base path without slash", Config{BasePath: "a"}, ErrBasePath},
		{"base path with trailing slash", Config{BasePath: "/a/"}, ErrBasePath},
		{"base path with param", Config{BasePath: "/stores/:id"}, ErrBasePath},
		{"base path with wildcard", Config{BasePath: "/a/*"}, ErrBasePath},
		{"public URL relative", Config{PublicURL: "pdp.example.com"}, ErrPublicURL},
		{"public URL ftp", Config{PublicURL: "ftp://pdp.example.com"}, ErrPublicURL},
		{"public URL with query", Config{PublicURL: "https://pdp.example.com/?a=b"}, ErrPublicURL},
		{"public URL with fragment", Config{PublicURL: "https://pdp.example.com/#x"}, ErrPublicURL},
		{"public URL unparsable", Config{PublicURL: "https://[::1"}, ErrPublicURL},
		{"negative body limit", Config{BodyLimit: -1}, ErrBodyLimit},
		{"negative timeout", Config{IdleTimeout: -time.Second}, ErrTimeout},
		{"key not hex", Config{APIKeys: map[string]string{"not-hex": "app"}}, ErrAPIKey},
		{"key too short", Config{APIKeys: map[string]string{"abcd": "app"}}, ErrAPIKey},
		{"key without application", Config{APIKeys: map[string]string{digest("t"): ""}}, ErrAPIKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Validate() = %v, want %v", err, tt.want)
			}
			if tt.want == nil {
				return
			}
			_, err = New(tt.cfg, Deps{Decider: &fakeDecider{}, Policies: loadedPolicies()})
			if !errors.Is(err, tt.want) {
				t.Errorf("New() = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := New(Config{}, Deps{Policies: loadedPolicies()}); !errors.Is(err, ErrDeps) {
		t.Errorf("New without Decider = %v, want ErrDeps", err)
	}
	reg := prometheus.NewRegistry()
	deps := Deps{Decider: &fakeDecider{}, Policies: loadedPolicies(), Registry: reg}
	if _, err := New(Config{}, deps); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{}, deps); err == nil {
		t.Error("second New on the same registry should fail to register metrics")
	}
}

func TestServe(t *testing.T) {
	srv, err := New(Config{ShutdownTimeout: 5 * time.Second},
		Deps{Decider: &fakeDecider{}, Policies: loadedPolicies()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	base := "http://" + ln.Addr().String()
	res, err := http.Get(base + "/.well-known/authzen-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	_ = json.NewDecoder(res.Body).Decode(&md)
	res.Body.Close()
	if md["policy_decision_point"] != base {
		t.Errorf("policy_decision_point %v, want %s derived from the listener", md["policy_decision_point"], base)
	}
	res, err = http.Post(base+evalPath, "application/json", strings.NewReader(evalBody(subAlice, actRead, res1)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("evaluation over Serve: %d", res.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v after cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := http.Get(base + HealthzPath); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestURLFromAddr(t *testing.T) {
	tests := map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080",
		"0.0.0.0:8080":   "http://localhost:8080",
		"[::]:9000":      "http://localhost:9000",
		"[::1]:9000":     "http://[::1]:9000",
	}
	for in, want := range tests {
		addr, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := urlFromAddr(addr); got != want {
			t.Errorf("urlFromAddr(%s) = %s, want %s", in, got, want)
		}
	}
}
