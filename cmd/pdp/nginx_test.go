//go:build linux

package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ciampdp/pdp/internal/jwttest"
)

// The Northbank sidecar example (examples/northbank/sidecar), from this
// package's folder, and the addresses its files name.
const (
	nbSidecarDir     = "../../examples/northbank/sidecar"
	nbSidecarAddr    = "127.0.0.1:8181"
	nbAppAddr        = "127.0.0.1:8090"
	nbNginxAddr      = "127.0.0.1:8000"
	nbJWKSPath       = "examples/northbank/sidecar/jwks.json"
	nbTokenIssuer    = "https://idp.northbank.example/"
	nbTokenAudience  = "mobile-banking"
	nbMobileBanking  = "demo-key-mobile-banking"
	nginxInstallHint = "apt-get install -y nginx"
)

// nginxBinary finds nginx, or skips the test loudly: .ci/run installs it,
// so a skip here means a machine set up by hand.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	t.Skip("SKIPPED: nginx is not installed (not on PATH, no /usr/sbin/nginx); this end-to-end test needs a real nginx with auth_request: " +
		nginxInstallHint + " (.ci/run does it)")
	return ""
}

// nbSidecarConfig writes a copy of the example's sidecar.yaml with the JWKS
// path made absolute (the test runs in cmd/pdp) and returns its path.
// listen, central_url and spool_dir come from startSidecar.
func nbSidecarConfig(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(nbSidecarDir, "sidecar.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := filepath.Abs(filepath.Join(nbSidecarDir, "jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := replaceOnce(t, string(data), nbJWKSPath, jwks)
	path := filepath.Join(dir, "sidecar.yaml")
	writeFile(t, path, cfg)
	return path
}

// replaceOnce replaces old in s, which must be there exactly once (the
// example's files and the tests must not drift apart).
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("the example names %q %d times, want once", old, n)
	}
	return strings.Replace(s, old, new, 1)
}

// nbToken signs a token with the example's demo key
// (demo-only-signing-key.json), as mint-token does; claims override the
// standard ones (a nil value deletes).
func nbToken(t *testing.T, sub string, claims map[string]any) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(nbSidecarDir, "demo-only-signing-key.json"))
	if err != nil {
		t.Fatal(err)
	}
	var key jose.JSONWebKey
	if err := json.Unmarshal(data, &key); err != nil {
		t.Fatal(err)
	}
	return signToken(t, key, sub, claims)
}

func signToken(t *testing.T, key jose.JSONWebKey, sub string, claims map[string]any) string {
	t.Helper()
	now := time.Now()
	c := map[string]any{"iss": nbTokenIssuer, "aud": nbTokenAudience, "sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	return jwttest.Sign(t, jose.ES256, key, jwttest.Claims(c, claims))
}

// startNorthbankApp builds and runs the example's app
// (examples/northbank/sidecar/app) on a free loopback port and returns its
// address and pid; it is killed at cleanup.
func startNorthbankApp(t *testing.T) (string, int) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "northbank-app")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(nbSidecarDir, "app")).CombinedOutput(); err != nil {
		t.Fatalf("go build the example app: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // even if this test binary panics
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "northbank app listening on http://"); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return a, cmd.Process.Pid
	case <-time.After(30 * time.Second):
		t.Fatal("the example app did not start listening within 30s")
	}
	return "", 0
}

// startNginx runs the real nginx in the foreground as this user, with the
// example's nginx.conf pointed at the sidecar and app addresses given,
// listening on a free port, its logs, pid and temp files under a temporary
// prefix. It returns nginx's base URL and its master's pid; nginx is
// stopped (SIGQUIT, then SIGKILL) at cleanup.
func startNginx(t *testing.T, sidecarAddr, appAddr string) (string, int) {
	t.Helper()
	return startNginxConf(t, filepath.Join(nbSidecarDir, "nginx.conf"), sidecarAddr, appAddr)
}

// startNginxConf is startNginx with another of the example's nginx
// configurations (it must name the same addresses).
func startNginxConf(t *testing.T, confFile, sidecarAddr, appAddr string) (string, int) {
	t.Helper()
	bin := nginxBinary(t)
	prefix := t.TempDir()
	if err := os.MkdirAll(filepath.Join(prefix, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(confFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	conf := replaceOnce(t, string(data), "server "+nbSidecarAddr+";", "server "+sidecarAddr+";")
	conf = replaceOnce(t, conf, "server "+nbAppAddr+";", "server "+appAddr+";")
	conf = replaceOnce(t, conf, "listen "+nbNginxAddr+";", "listen "+addr+";")
	confPath := filepath.Join(prefix, "nginx.conf")
	writeFile(t, confPath, conf)
	// Files the configuration names relative to itself.
	if pw, err := os.ReadFile(filepath.Join(filepath.Dir(confFile), "htpasswd")); err == nil {
		writeFile(t, filepath.Join(prefix, "htpasswd"), string(pw))
	}

	global := "daemon off;"
	if os.Getuid() == 0 {
		// As root, nginx would run its workers as nobody, who cannot
		// enter the test's private temp folders: keep them as this user.
		if u, err := osuser.Current(); err == nil {
			global += " user " + u.Username + ";"
		}
	}
	errLog := filepath.Join(prefix, "logs", "error.log")
	cmd := exec.Command(bin, "-p", prefix, "-e", errLog, "-c", confPath, "-g", global)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // even if this test binary panics
	stderr, err := os.Create(filepath.Join(prefix, "logs", "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close() // nginx has its own copy
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	logs := func() string {
		a, _ := os.ReadFile(stderr.Name())
		b, _ := os.ReadFile(errLog)
		return string(a) + string(b)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful stop
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("nginx did not stop on SIGQUIT within 10s; log:\n%s", logs())
		}
		if t.Failed() {
			t.Logf("nginx log:\n%s", logs())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("nginx exited before listening: %v; log:\n%s", waitErr, logs())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			_ = c.Close()
			return "http://" + addr, cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s within 20s; log:\n%s", addr, logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nbStack is the example's whole chain: central PDP (sync trail in dir),
// sidecar with the example's gateway routes, app, nginx.
type nbStack struct {
	dir                string
	central            *server
	sidecar, app, edge string // base URLs (app: host:port)
}

func startNorthbankStack(t *testing.T) nbStack {
	t.Helper()
	nginxBinary(t) // skip before starting anything
	dir := t.TempDir()
	central := northbankWithTrail(t, dir, "127.0.0.1:0")
	sc := startSidecar(t, central.URL, nbMobileBanking, filepath.Join(dir, "spool"),
		map[string]string{"PDP_SIDECAR_CONFIG": nbSidecarConfig(t, dir)})
	app, _ := startNorthbankApp(t)
	edge, _ := startNginx(t, strings.TrimPrefix(sc, "http://"), app)
	eventually(t, "the sidecar holds a lease from the central PDP", func() bool {
		return sidecarStatus(t, sc).Mode == "connected"
	})
	return nbStack{dir: dir, central: central, sidecar: sc, app: app, edge: edge}
}

// nginxClient follows no redirects and keeps connections to nginx alive.
var nginxClient = &http.Client{
	Transport:     &http.Transport{MaxIdleConnsPerHost: 256},
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// throughNginx sends a request to nginx with the token (none if empty) and
// headers, and returns the answer and its body.
func throughNginx(t *testing.T, base, method, path, token string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := nginxClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s through nginx: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// TestNginxNorthbank is issue 6's gateway test with a real nginx: the
// mobile-banking app behind nginx's auth_request, answered by the sidecar
// (examples/northbank/sidecar as committed, only addresses and paths
// rewritten), which asks the central PDP or answers from its cache.
// Allowed requests reach the app; denied ones get 403 and unauthenticated
// ones 401, all with a decision id; and every decision id nginx returned
// for a PDP decision is in the central trail once the sidecar shipped its
// own answers.
func TestNginxNorthbank(t *testing.T) {
	s := startNorthbankStack(t)
	alice, bob, mallory := nbToken(t, "alice", nil), nbToken(t, "bob", nil), nbToken(t, "mallory", nil)
	bobForAlice := nbToken(t, "bob", map[string]any{"act_for": "alice"})
	const (
		statements = "/accounts/acc-alice/statements"
		pay250     = "/accounts/acc-alice/payments?amount=250&currency=EUR"
		pay1500    = "/accounts/acc-alice/payments?amount=1500&currency=EUR"
	)
	var inTrail []string // decision ids nginx returned for PDP (or sidecar) decisions

	allowed := []struct {
		name, method, path, token string
		header                    []string
		body                      string
	}{
		{"alice views her statements", http.MethodGet, statements, alice, nil,
			"allowed: user alice view_statements on account acc-alice"},
		{"alice views them again (the sidecar's cache)", http.MethodGet, statements, alice, nil,
			"allowed: user alice view_statements on account acc-alice"},
		{"bob pays 250 for alice (X-On-Behalf-Of)", http.MethodPost, pay250, bob, []string{"X-On-Behalf-Of", "alice"},
			"allowed: user bob make_payment on account acc-alice, 250 EUR"},
		{"bob pays 250 for alice (act_for claim)", http.MethodPost, pay250, bobForAlice, nil,
			"allowed: user bob make_payment on account acc-alice, 250 EUR"},
	}
	for _, tt := range allowed {
		res, body := throughNginx(t, s.edge, tt.method, tt.path, tt.token, tt.header...)
		id := res.Header.Get("X-Decision-Id")
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(body, tt.body) || id == "" || !strings.Contains(body, "(decision "+id+")") {
			t.Errorf("%s: %d %q (X-Decision-Id %q), want 200 from the app: %q… with the decision id", tt.name, res.StatusCode, body, id, tt.body)
			continue
		}
		inTrail = append(inTrail, id)
	}
	if st := sidecarStatus(t, s.sidecar); st.Hits < 2 {
		t.Errorf("sidecar: %d cache hits, want at least 2 (alice's second view, bob's second payment): %+v", st.Hits, st)
	}

	denied := []struct {
		name, method, path, token string
		header                    []string
		reasons                   string
	}{
		{"mallory views alice's statements", http.MethodGet, statements, mallory, nil, "no_relationship"},
		{"bob pays 1500 for alice", http.MethodPost, pay1500, bob, []string{"X-On-Behalf-Of", "alice"}, "delegation_out_of_scope"},
		{"bob pays 250 from alice's account for himself", http.MethodPost, pay250, bob, nil, "not_permitted"},
	}
	for _, tt := range denied {
		res, body := throughNginx(t, s.edge, tt.method, tt.path, tt.token, tt.header...)
		id := res.Header.Get("X-Decision-Id")
		if res.StatusCode != http.StatusForbidden || id == "" || res.Header.Get("X-Decision-Reasons") != tt.reasons || strings.Contains(body, "allowed") {
			t.Errorf("%s: %d %q (X-Decision-Id %q, reasons %q), want 403 with a decision id and reasons %q",
				tt.name, res.StatusCode, body, id, res.Header.Get("X-Decision-Reasons"), tt.reasons)
			continue
		}
		inTrail = append(inTrail, id)
	}

	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged := signToken(t, jose.JSONWebKey{Key: otherKey, KeyID: "northbank-demo-1"}, "alice", nil)
	unauthenticated := []struct {
		name, token, challenge string
	}{
		{"no token", "", `Bearer realm="northbank"`},
		{"a token signed with another key", forged, `Bearer realm="northbank", error="invalid_token"`},
		{"an expired token", nbToken(t, "alice", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), `Bearer realm="northbank", error="invalid_token"`},
		{"a token for another audience", nbToken(t, "alice", map[string]any{"aud": "advisor-portal"}), `Bearer realm="northbank", error="invalid_token"`},
		{"a garbled token", "not.a.token", `Bearer realm="northbank", error="invalid_token"`},
	}
	for _, tt := range unauthenticated {
		res, body := throughNginx(t, s.edge, http.MethodGet, statements, tt.token)
		if res.StatusCode != http.StatusUnauthorized || res.Header.Get("X-Decision-Id") == "" ||
			!strings.HasPrefix(res.Header.Get("WWW-Authenticate"), tt.challenge) || strings.Contains(body, "allowed") {
			t.Errorf("%s: %d %q (WWW-Authenticate %q, X-Decision-Id %q), want 401 with %s… and a decision id", tt.name,
				res.StatusCode, body, res.Header.Get("WWW-Authenticate"), res.Header.Get("X-Decision-Id"), tt.challenge)
		}
	}
	// No route, and nginx's internal location from outside.
	if res, _ := throughNginx(t, s.edge, http.MethodDelete, "/accounts/acc-alice", alice); res.StatusCode != http.StatusForbidden ||
		res.Header.Get("X-Decision-Reasons") != "route_not_found" {
		t.Errorf("an unrouted request: %d %q, want 403 route_not_found", res.StatusCode, res.Header.Get("X-Decision-Reasons"))
	}
	if res, _ := throughNginx(t, s.edge, http.MethodGet, "/authz", alice); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /authz from outside: %d, want 404 (internal location)", res.StatusCode)
	}

	eventually(t, "the sidecar shipped its answers to the central trail", func() bool {
		st := sidecarStatus(t, s.sidecar)
		return st.Spooled > 0 && st.Shipped >= st.Spooled
	})
	s.central.stop(t)
	ids := trailAnswers(t, filepath.Join(s.dir, "trail"))
	for _, id := range inTrail {
		if ids[id] != 1 {
			t.Errorf("decision %s (returned by nginx) is %d times in the central trail, want once", id, ids[id])
		}
	}
	if len(inTrail) != len(allowed)+len(denied) {
		t.Errorf("%d decision ids to look for, want %d", len(inTrail), len(allowed)+len(denied))
	}
}
