//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// The enforcement path holds: nginx → sidecar → central PDP, with the
// example's files (examples/northbank/sidecar) as committed.

// appSeen is what the echo app received: what an application behind
// nginx acts on.
type appSeen struct {
	Method     string      `json:"method"`
	RequestURI string      `json:"request_uri"`
	Path       string      `json:"path"`
	Query      url.Values  `json:"query"`
	Header     http.Header `json:"header"`
}

// startEchoApp serves, on a free loopback port, an app that answers every
// request with what it received (appSeen as JSON), parsed as a Go
// application parses it.
func startEchoApp(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(appSeen{Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header})
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// enforceStack is the chain with the echo app behind nginx: the central
// PDP (sync trail in dir), the sidecar with the given configuration, and
// nginx with the given configuration file.
type enforceStack struct {
	dir           string
	central       *server
	sidecar, edge string // base URLs
	edgeAddr      string // nginx's host:port, for raw requests
}

func startEnforceStack(t *testing.T, sidecarCfg func(dir string) string, nginxConf string) enforceStack {
	t.Helper()
	nginxBinary(t) // skip before starting anything
	dir := t.TempDir()
	central := northbankWithTrail(t, dir, "127.0.0.1:0")
	sc := startSidecar(t, central.URL, nbMobileBanking, filepath.Join(dir, "spool"),
		map[string]string{"PDP_SIDECAR_CONFIG": sidecarCfg(dir)})
	edge, _ := startNginxConf(t, nginxConf, strings.TrimPrefix(sc, "http://"), startEchoApp(t))
	return enforceStack{dir: dir, central: central, sidecar: sc, edge: edge, edgeAddr: strings.TrimPrefix(edge, "http://")}
}

// trustedHeaderDir holds the example's trusted-header variant.
const trustedHeaderDir = nbSidecarDir + "/trusted-header"

// trustedSidecarConfig copies the trusted-header variant's sidecar.yaml.
func trustedSidecarConfig(t *testing.T) func(dir string) string {
	return func(dir string) string {
		data, err := os.ReadFile(filepath.Join(trustedHeaderDir, "sidecar.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "sidecar-trusted.yaml")
		writeFile(t, p, string(data))
		return p
	}
}

// rawRequest sends one request to addr with the request target written
// exactly as given (no client-side escaping or cleaning) and returns the
// answer and its body.
func rawRequest(t *testing.T, addr, method, target string, header ...string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: 0\r\n", method, target, addr)
	for i := 0; i+1 < len(header); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", header[i], header[i+1])
	}
	b.WriteString("\r\n")
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %q: %v", method, target, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

// trailRequests maps every decision id in the trail in dir (central
// decisions and shipped sidecar answers) to the request it decided, with
// numbers as json.Number.
func trailRequests(t *testing.T, dir string) map[string]pdp.Request {
	t.Helper()
	l, err := trail.OpenFile(dir, trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	decode := func(data []byte, v any) error {
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		return d.Decode(v)
	}
	out := map[string]pdp.Request{}
	err = l.Scan(0, l.Size(), func(r trail.Record) error {
		switch r.Kind {
		case recorder.KindDecision:
			var b struct {
				Request pdp.Request `json:"request"`
			}
			if err := decode(r.Body, &b); err != nil {
				return err
			}
			out[r.ID] = b.Request
		case trail.KindSidecar:
			var b struct {
				Record struct {
					DecisionID string      `json:"decision_id"`
					Request    pdp.Request `json:"request"`
				} `json:"record"`
			}
			if err := decode(r.Body, &b); err != nil {
				return err
			}
			out[b.Record.DecisionID] = b.Record.Request
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// appVsDecision lists where what the app received differs from the
// request the PDP decided: the account in the path, the action the path
// names, the query values the route maps (amount, currency), the subject
// and whom it acts for. Nothing listed: the app acts on what was decided.
func appVsDecision(seen appSeen, d pdp.Request) []string {
	var diffs []string
	if strings.ContainsAny(seen.RequestURI, "#;") {
		diffs = append(diffs, fmt.Sprintf("the app received the target %q (a fragment or ';')", seen.RequestURI))
	}
	segs := strings.Split(strings.TrimPrefix(seen.Path, "/"), "/")
	actions := map[string]string{"statements": "view_statements", "payments": "make_payment"}
	switch {
	case path.Clean(seen.Path) != seen.Path || len(segs) != 3 || segs[0] != "accounts":
		diffs = append(diffs, fmt.Sprintf("the app's path %q is not /accounts/{id}/…", seen.Path))
	default:
		if segs[1] != d.Resource.ID || d.Resource.Type != "account" {
			diffs = append(diffs, fmt.Sprintf("the app's account %q, the decision's %s:%s", segs[1], d.Resource.Type, d.Resource.ID))
		}
		if actions[segs[2]] != d.Action.Name {
			diffs = append(diffs, fmt.Sprintf("the app's path %q, the decision's action %s", seen.Path, d.Action.Name))
		}
	}
	for _, k := range []string{"amount", "currency"} {
		vs := seen.Query[k]
		got, has := d.Context[k]
		switch {
		case len(vs) > 1:
			diffs = append(diffs, fmt.Sprintf("the app received %s %d times: %q", k, len(vs), vs))
		case (len(vs) == 1) != has:
			diffs = append(diffs, fmt.Sprintf("%s: the app received %q, the decision had %v (present %v)", k, vs, got, has))
		case has && k == "amount":
			a, errA := strconv.ParseFloat(vs[0], 64)
			n, _ := got.(json.Number)
			b, errB := n.Float64()
			if errA != nil || errB != nil || a != b {
				diffs = append(diffs, fmt.Sprintf("amount: the app received %q, the decision had %v", vs[0], got))
			}
		case has && fmt.Sprint(got) != vs[0]:
			diffs = append(diffs, fmt.Sprintf("%s: the app received %q, the decision had %q", k, vs[0], got))
		}
	}
	if s := seen.Header.Get("X-Authz-Subject"); s != d.Subject.ID {
		diffs = append(diffs, fmt.Sprintf("the app's subject %q, the decision's %q", s, d.Subject.ID))
	}
	obo := ""
	if m, ok := d.Context[pdp.ContextOnBehalfOf].(map[string]any); ok && !(m["type"] == d.Subject.Type && m["id"] == d.Subject.ID) {
		obo = fmt.Sprintf("%v:%v", m["type"], m["id"])
	}
	if s := seen.Header.Get("X-Authz-On-Behalf-Of"); s != obo {
		diffs = append(diffs, fmt.Sprintf("the app's on-behalf-of %q, the decision's %q", s, obo))
	}
	if vs := seen.Header.Values("X-On-Behalf-Of"); len(vs) > 0 {
		diffs = append(diffs, fmt.Sprintf("the client's X-On-Behalf-Of %q reached the app", vs))
	}
	return diffs
}

// TestNginxRequestTargets feeds nginx request targets that proxies and
// applications read in different ways and checks, for each, that either
// the request is refused or the decision's resource and context are what
// the app behind nginx received (the echo app; the decision from the
// central trail, by the decision id nginx returned).
func TestNginxRequestTargets(t *testing.T) {
	s := startEnforceStack(t, func(dir string) string { return nbSidecarConfig(t, dir) }, filepath.Join(nbSidecarDir, "nginx.conf"))
	bobForAlice := "Bearer " + nbToken(t, "bob", map[string]any{"act_for": "alice"})
	alice := "Bearer " + nbToken(t, "alice", nil)
	const (
		pay  = "/accounts/acc-alice/payments"
		stmt = "/accounts/acc-alice/statements"
	)
	long := strings.Repeat("x", 3000)
	tests := []struct {
		name, method, target, auth string
		allowed                    bool // must reach the app (a control case)
	}{
		{"bob pays 900 EUR for alice", http.MethodPost, pay + "?amount=900&currency=EUR", bobForAlice, true},
		{"alice views her statements", http.MethodGet, stmt, alice, true},
		{"an escaped letter in the query", http.MethodPost, pay + "?amount=900&currency=%45UR", bobForAlice, false},
		{"an escaped letter in the path", http.MethodGet, "/accounts/acc-%61lice/statements", alice, false},
		{"a fragment in the query", http.MethodPost, pay + "?amount=900&x=#&currency=USD", bobForAlice, false},
		{"a fragment after the query", http.MethodPost, pay + "?amount=900&currency=EUR#&currency=USD", bobForAlice, false},
		{"a fragment in the path", http.MethodGet, stmt + "#/../../acc-carol/statements", alice, false},
		{"an escaped '#' in a value", http.MethodPost, pay + "?amount=900&currency=EUR%23", bobForAlice, false},
		{"an encoded slash", http.MethodGet, "/accounts/acc-alice%2F..%2Facc-carol/statements", alice, false},
		{"an encoded slash (lower case)", http.MethodGet, "/accounts/acc-alice%2f..%2facc-carol/statements", alice, false},
		{"encoded dot segments", http.MethodGet, "/accounts/acc-carol/%2e%2e/acc-alice/statements", alice, false},
		{"encoded dot segments (upper case, mixed)", http.MethodGet, "/accounts/acc-carol/.%2E/acc-alice/statements", alice, false},
		{"raw dot segments", http.MethodGet, "/accounts/acc-carol/../acc-alice/statements", alice, false},
		{"a single dot segment", http.MethodGet, "/accounts/./acc-alice/statements", alice, false},
		{"a double slash at the start", http.MethodGet, "//accounts/acc-alice/statements", alice, false},
		{"a double slash inside", http.MethodGet, "/accounts//acc-alice/statements", alice, false},
		{"a backslash", http.MethodGet, `/accounts/acc-carol\..\acc-alice/statements`, alice, false},
		{"';' path parameters in the id", http.MethodGet, "/accounts/acc-alice;v=1/statements", alice, false},
		{"';' path parameters at the end", http.MethodGet, stmt + ";jsessionid=1", alice, false},
		{"';' in the query", http.MethodPost, pay + "?amount=900;currency=USD&currency=EUR", bobForAlice, false},
		{"a duplicate amount", http.MethodPost, pay + "?amount=900&amount=5000&currency=EUR", bobForAlice, false},
		{"a duplicate currency", http.MethodPost, pay + "?amount=900&currency=EUR&currency=USD", bobForAlice, false},
		{"a duplicate under an escaped name", http.MethodPost, pay + "?%61mount=5000&amount=900&currency=EUR", bobForAlice, false},
		{"a duplicate in another case", http.MethodPost, pay + "?amount=900&currency=EUR&CURRENCY=USD", bobForAlice, false},
		{"an empty duplicate", http.MethodPost, pay + "?amount=900&currency=EUR&currency=", bobForAlice, false},
		{"a bad escape in the query", http.MethodPost, pay + "?amount=900&currency=EUR&x=%zz", bobForAlice, false},
		{"a space before the amount ('+')", http.MethodPost, pay + "?amount=+900&currency=EUR", bobForAlice, false},
		{"a long query", http.MethodPost, pay + "?amount=900&currency=EUR&pad=" + long, bobForAlice, false},
		{"a very long query (past nginx's buffers)", http.MethodPost, pay + "?amount=900&currency=EUR&pad=" + strings.Repeat(long, 8), bobForAlice, false},
		{"a very long path", http.MethodGet, "/accounts/" + strings.Repeat(long, 8) + "/statements", alice, false},
		{"invalid UTF-8 escaped in the path", http.MethodGet, "/accounts/acc-%ff/statements", alice, false},
		{"invalid UTF-8 raw in the path", http.MethodGet, "/accounts/acc-alice\xff/statements", alice, false},
		{"invalid UTF-8 in a query value", http.MethodPost, pay + "?amount=900&currency=EUR%ff", bobForAlice, false},
		{"a NUL in the path", http.MethodGet, "/accounts/acc-alice%00/statements", alice, false},
		{"an absolute-form target", http.MethodGet, "http://bank.example" + stmt, alice, false},
	}
	type sent struct {
		name string
		seen appSeen
		id   string
	}
	var reached []sent
	for _, tt := range tests {
		// bob's token acts for alice (the claim wins over the header,
		// which must not reach the app); alice names herself.
		obo := "carol"
		if tt.auth == alice {
			obo = "alice"
		}
		res, body := rawRequest(t, s.edgeAddr, tt.method, tt.target, "Authorization", tt.auth, "X-On-Behalf-Of", obo)
		if res.StatusCode != http.StatusOK {
			if tt.allowed {
				t.Errorf("%s: %d (reasons %q), want 200", tt.name, res.StatusCode, res.Header.Get("X-Decision-Reasons"))
			}
			if strings.Contains(body, "request_uri") {
				t.Errorf("%s: %d, but the app answered: %s", tt.name, res.StatusCode, body)
			}
			t.Logf("%s: refused %d %s", tt.name, res.StatusCode, res.Header.Get("X-Decision-Reasons"))
			continue
		}
		var seen appSeen
		if err := json.Unmarshal([]byte(body), &seen); err != nil {
			t.Errorf("%s: 200 with %q, not the echo app's answer", tt.name, body)
			continue
		}
		t.Logf("%s: reached the app as %s %q", tt.name, seen.Method, seen.RequestURI)
		reached = append(reached, sent{tt.name, seen, res.Header.Get("X-Decision-Id")})
	}

	eventually(t, "the sidecar shipped its answers to the central trail", func() bool {
		st := sidecarStatus(t, s.sidecar)
		return st.Shipped >= st.Spooled
	})
	s.central.stop(t)
	decided := trailRequests(t, filepath.Join(s.dir, "trail"))
	for _, r := range reached {
		d, ok := decided[r.id]
		if !ok {
			t.Errorf("%s: reached the app under decision %q, which is not in the trail", r.name, r.id)
			continue
		}
		for _, diff := range appVsDecision(r.seen, d) {
			t.Errorf("%s: %s", r.name, diff)
		}
	}
}

// TestNginxClaimedAgency: naming someone to act for never widens what the
// subject may do. carol (a minor) may pay at most 100 from her account; a
// request claiming to act for someone she holds no delegation from is
// denied, whatever it is for.
func TestNginxClaimedAgency(t *testing.T) {
	s := startNorthbankStack(t)
	carol, alice, bob := nbToken(t, "carol", nil), nbToken(t, "alice", nil), nbToken(t, "bob", nil)
	daveForCarol := nbToken(t, "dave", map[string]any{"act_for": "carol"})
	const (
		carol5000 = "/accounts/acc-carol/payments?amount=5000&currency=EUR"
		carol50   = "/accounts/acc-carol/payments?amount=50&currency=EUR"
		alice50   = "/accounts/acc-alice/payments?amount=50&currency=EUR"
	)
	tests := []struct {
		name, path, token, onBehalfOf string
		status                        int
		reasons                       string // X-Decision-Reasons of a 403
	}{
		{"carol pays 5000 herself", carol5000, carol, "", http.StatusForbidden, "minor_payment_limit"},
		{"carol pays 5000 claiming to act for nobody", carol5000, carol, "nobody", http.StatusForbidden, "minor_payment_limit,no_relationship"},
		{"carol pays 5000 claiming to act for dave", carol5000, carol, "dave", http.StatusForbidden, "minor_payment_limit,no_relationship"},
		{"carol pays 5000 claiming to act for alice", carol5000, carol, "alice", http.StatusForbidden, "minor_payment_limit,no_relationship"},
		{"carol pays 5000 acting for herself", carol5000, carol, "carol", http.StatusForbidden, "minor_payment_limit"},
		{"carol pays 50 claiming to act for nobody", carol50, carol, "nobody", http.StatusForbidden, "no_relationship"},
		{"alice pays 50 from her account claiming to act for bob", alice50, alice, "bob", http.StatusForbidden, "no_relationship"},
		{"bob pays 50 for alice from alice's account", alice50, bob, "alice", http.StatusOK, ""},
		{"carol pays 50 herself", carol50, carol, "", http.StatusOK, ""},
		{"carol pays 50 acting for herself", carol50, carol, "carol", http.StatusOK, ""},
		{"dave pays 5000 for carol (her guardian)", carol5000, daveForCarol, "", http.StatusOK, ""},
	}
	for _, tt := range tests {
		var h []string
		if tt.onBehalfOf != "" {
			h = []string{"X-On-Behalf-Of", tt.onBehalfOf}
		}
		res, body := throughNginx(t, s.edge, http.MethodPost, tt.path, tt.token, h...)
		if res.StatusCode != tt.status || res.Header.Get("X-Decision-Reasons") != tt.reasons || (tt.status != http.StatusOK) == strings.HasPrefix(body, "allowed") {
			t.Errorf("%s: %d (reasons %q) %q, want %d (reasons %q)", tt.name, res.StatusCode, res.Header.Get("X-Decision-Reasons"), body, tt.status, tt.reasons)
		}
	}
}

// TestNginxExampleHardening: the example's nginx.conf gives up on a hung
// sidecar in seconds, passes the app whom the decision acted for (never
// the client's header), and keeps a client's trusted header away from the
// sidecar; the trusted-header variant sets that header from nginx's own
// authentication.
func TestNginxExampleHardening(t *testing.T) {
	nginxBinary(t)
	conf := filepath.Join(nbSidecarDir, "nginx.conf")
	alice := nbToken(t, "alice", nil)

	t.Run("a hung sidecar", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() { // accept, read, never answer
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { _, _ = io.Copy(io.Discard, c) }()
			}
		}()
		edge, _ := startNginxConf(t, conf, ln.Addr().String(), startEchoApp(t))
		start := time.Now()
		res, body := rawRequest(t, strings.TrimPrefix(edge, "http://"), http.MethodGet, "/accounts/acc-alice/statements", "Authorization", "Bearer "+alice)
		if took := time.Since(start); res.StatusCode != http.StatusInternalServerError || took > 8*time.Second || strings.Contains(body, "request_uri") {
			t.Errorf("with a hung sidecar: %d after %v (%q), want 500 within 8s", res.StatusCode, took.Round(time.Millisecond), body)
		}
	})

	t.Run("on behalf of, from the decision", func(t *testing.T) {
		s := startEnforceStack(t, func(dir string) string { return nbSidecarConfig(t, dir) }, conf)
		bobForAlice := nbToken(t, "bob", map[string]any{"act_for": "alice"})
		tests := []struct {
			name, path, token, onBehalfOf, want string
		}{
			{"bob for alice (claim), the client's header says carol", "/accounts/acc-alice/payments?amount=250&currency=EUR", bobForAlice, "carol", "user:alice"},
			{"bob for alice (header)", "/accounts/acc-alice/payments?amount=250&currency=EUR", nbToken(t, "bob", nil), "alice", "user:alice"},
			{"alice for herself", "/accounts/acc-alice/statements", alice, "alice", ""},
			{"alice, no header", "/accounts/acc-alice/statements", alice, "", ""},
		}
		for _, tt := range tests {
			h := []string{"Authorization", "Bearer " + tt.token}
			if tt.onBehalfOf != "" {
				h = append(h, "X-On-Behalf-Of", tt.onBehalfOf)
			}
			method := http.MethodGet
			if strings.Contains(tt.path, "payments") {
				method = http.MethodPost
			}
			res, body := rawRequest(t, s.edgeAddr, method, tt.path, h...)
			var seen appSeen
			if res.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &seen) != nil {
				t.Errorf("%s: %d %q, want 200 from the app", tt.name, res.StatusCode, body)
				continue
			}
			if got := seen.Header.Get("X-Authz-On-Behalf-Of"); got != tt.want || len(seen.Header.Values("X-On-Behalf-Of")) > 0 {
				t.Errorf("%s: the app received X-Authz-On-Behalf-Of %q and X-On-Behalf-Of %q, want %q and none", tt.name, got, seen.Header.Values("X-On-Behalf-Of"), tt.want)
			}
		}
	})

	t.Run("a client's trusted header with the JWT nginx.conf", func(t *testing.T) {
		// The sidecar in trusted-header mode behind the JWT example's
		// nginx.conf: nginx does not authenticate, so a client's X-User-Id
		// must never reach the sidecar.
		s := startEnforceStack(t, trustedSidecarConfig(t), conf)
		res, body := rawRequest(t, s.edgeAddr, http.MethodPost, "/accounts/acc-carol/payments?amount=50&currency=EUR", "X-User-Id", "carol")
		if res.StatusCode != http.StatusUnauthorized || strings.Contains(body, "request_uri") {
			t.Errorf("an anonymous X-User-Id: carol: %d %q, want 401", res.StatusCode, body)
		}
	})

	t.Run("the trusted-header variant", func(t *testing.T) {
		s := startEnforceStack(t, trustedSidecarConfig(t), filepath.Join(trustedHeaderDir, "nginx.conf"))
		basic := func(user string) string {
			return "Basic " + base64Std(user+":demo-password-"+user)
		}
		tests := []struct {
			name, method, path string
			header             []string
			status             int
			subject            string // X-Authz-Subject the app received on a 200
		}{
			{"anonymous, X-User-Id: carol", http.MethodPost, "/accounts/acc-carol/payments?amount=50&currency=EUR", []string{"X-User-Id", "carol"}, http.StatusUnauthorized, ""},
			{"carol with a wrong password", http.MethodPost, "/accounts/acc-carol/payments?amount=50&currency=EUR", []string{"Authorization", "Basic " + base64Std("carol:guess")}, http.StatusUnauthorized, ""},
			{"alice, X-User-Id: carol, pays from carol's account", http.MethodPost, "/accounts/acc-carol/payments?amount=50&currency=EUR", []string{"Authorization", basic("alice"), "X-User-Id", "carol"}, http.StatusForbidden, ""},
			{"alice, X-User-Id: carol, views her own statements", http.MethodGet, "/accounts/acc-alice/statements", []string{"Authorization", basic("alice"), "X-User-Id", "carol"}, http.StatusOK, "alice"},
			{"carol pays 50", http.MethodPost, "/accounts/acc-carol/payments?amount=50&currency=EUR", []string{"Authorization", basic("carol")}, http.StatusOK, "carol"},
		}
		for _, tt := range tests {
			res, body := rawRequest(t, s.edgeAddr, tt.method, tt.path, tt.header...)
			var seen appSeen
			if res.StatusCode != tt.status {
				t.Errorf("%s: %d %q, want %d", tt.name, res.StatusCode, body, tt.status)
				continue
			}
			if tt.status != http.StatusOK {
				if strings.Contains(body, "request_uri") {
					t.Errorf("%s: %d, but the app answered: %s", tt.name, res.StatusCode, body)
				}
				continue
			}
			if err := json.Unmarshal([]byte(body), &seen); err != nil {
				t.Errorf("%s: 200 with %q, not the echo app's answer", tt.name, body)
				continue
			}
			if got := seen.Header.Get("X-Authz-Subject"); got != tt.subject || len(seen.Header.Values("X-User-Id")) > 0 {
				t.Errorf("%s: the app received X-Authz-Subject %q, X-User-Id %q; want %q and no X-User-Id", tt.name, got, seen.Header.Values("X-User-Id"), tt.subject)
			}
		}
	})
}

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
