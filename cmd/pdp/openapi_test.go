package main

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/api/openapitest"
)

// The HTTP traffic of this package's tests with the PDPs they start is
// checked against the OpenAPI document (pdp/api/openapi.json): the
// helpers that start a PDP (startServer, startProc, startBinary,
// startProcess) register its address with trackPDP, and the clients the
// tests use (http.DefaultClient, so http.Get and http.Post, and the
// package's shared clients) check every exchange with a registered address:
// a response that breaks the document, or a request it accepted that
// breaks it, fails the round trip with the reason. Traffic with sidecars,
// nginx and the apps behind them is not checked.

// pdpAddrs counts the running PDPs the tests started by host:port (a
// port is free again, for a sidecar or an app, once its test is over).
var pdpAddrs struct {
	sync.Mutex
	n map[string]int
}

// trackPDP registers a PDP's address (host:port) for checking until the
// test ends.
func trackPDP(t *testing.T, addr string) {
	pdpAddrs.Lock()
	defer pdpAddrs.Unlock()
	if pdpAddrs.n == nil {
		pdpAddrs.n = map[string]int{}
	}
	pdpAddrs.n[addr]++
	t.Cleanup(func() {
		pdpAddrs.Lock()
		defer pdpAddrs.Unlock()
		if pdpAddrs.n[addr]--; pdpAddrs.n[addr] <= 0 {
			delete(pdpAddrs.n, addr)
		}
	})
}

func isPDP(host string) bool {
	pdpAddrs.Lock()
	defer pdpAddrs.Unlock()
	if rest, ok := strings.CutPrefix(host, "localhost:"); ok {
		return pdpAddrs.n[host] > 0 || pdpAddrs.n["127.0.0.1:"+rest] > 0
	}
	return pdpAddrs.n[host] > 0
}

func init() {
	v, err := openapitest.New(api.OpenAPI)
	if err != nil {
		panic(err) // TestOpenAPIDocumentIsValid in pdp/api says more
	}
	checked := func(base http.RoundTripper) http.RoundTripper {
		return &openapitest.Transport{Base: base, Validator: v, Checked: isPDP}
	}
	http.DefaultClient.Transport = checked(http.DefaultClient.Transport)
	for _, c := range []*http.Client{trailClient, procClient} {
		c.Transport = checked(c.Transport)
	}
}

// TestOpenAPITrafficIsChecked: the hook is on. A PDP's documented answers
// pass; an answer the document does not allow fails the round trip.
func TestOpenAPITrafficIsChecked(t *testing.T) {
	srv := startServer(t, "--dir", todoDir)
	for _, path := range []string{"/healthz", "/readyz", "/openapi.json", "/.well-known/authzen-configuration", "/v1/policies", "/metrics"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, res.StatusCode)
		}
	}
	code, data := srv.do(t, http.MethodGet, "/openapi.json", "")
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(data, &doc); code != http.StatusOK || err != nil || doc.OpenAPI != "3.1.0" || doc.Paths["/access/v1/evaluation"] == nil {
		t.Fatalf("GET /openapi.json: %d, %v: %.200s", code, err, data)
	}

	// A server that breaks the contract at a tracked address: its
	// evaluation answer lacks "decision".
	fake := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"allowed":true}`)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = fake.Serve(ln) }()
	t.Cleanup(func() { _ = fake.Close() })
	trackPDP(t, ln.Addr().String())
	_, err = http.Post("http://"+ln.Addr().String()+"/access/v1/evaluation", "application/json",
		strings.NewReader(evaluation(morty, "can_read_todos", `{"type": "todo", "id": "t1"}`)))
	if err == nil || !strings.Contains(err.Error(), `property "decision" is missing`) {
		t.Fatalf("a broken answer passed the check: err = %v", err)
	}
	_, err = http.Get("http://" + ln.Addr().String() + "/v1/undocumented")
	if !errors.Is(err, openapitest.ErrUndocumented) {
		t.Fatalf("a 200 on an undocumented path: err = %v, want ErrUndocumented", err)
	}
}

// TestOpenAPIOutOfTheBinary: the pdp binary does not link kin-openapi
// (the document is served as bytes).
func TestOpenAPIOutOfTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	cmd := exec.Command(goTool, "list", "-deps", ".")
	cmd.Env = os.Environ()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		if strings.HasPrefix(d, "github.com/getkin/") || strings.HasSuffix(d, "/openapitest") {
			t.Errorf("cmd/pdp depends on %s", d)
		}
	}
}
