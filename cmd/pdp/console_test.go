package main

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// consoleStory is the Northbank story the console tests look at: bob pays
// for alice, alice revokes his power of attorney, bob's next payment is
// denied (delegation_revoked), and a caller records an id that is markup.
type consoleStory struct {
	s        *server
	trailDir string
	allowed  string // bob's payment before the revoke
	denied   string // bob's payment after it
	xss      string // the decision whose subject id is <script>…
	consent  string // marketing to carol, on her consent grant
}

// xssID is a subject id that must show as text wherever it is rendered.
const xssID = `<script>alert(1)</script>`

func newConsoleStory(t *testing.T) consoleStory {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "trail")
	st := consoleStory{trailDir: dir}
	st.s = startNorthbank(t, "--trail-dir", dir)
	pay := forUser("alice", `,"amount":250,"currency":"EUR"`)
	ask := func(subject, ctx string, allowed bool) string {
		t.Helper()
		body := `{"subject":{"type":"user","id":` + jsonString(subject) + `},"action":{"name":"make_payment"},"resource":{"type":"account","id":"acc-alice"},"context":` + ctx + `}`
		code, data := st.s.do(t, http.MethodPost, "/access/v1/evaluation", body, demoKey("mobile-banking")...)
		var a answer
		if code != http.StatusOK || json.Unmarshal(data, &a) != nil || a.Decision != allowed {
			t.Fatalf("evaluation of %s: %d %s, want decision %v", subject, code, data, allowed)
		}
		return a.Context.DecisionID
	}
	st.allowed = ask("bob", pay, true)
	code, data := st.s.do(t, http.MethodPost, "/v1/delegations/poa-alice-bob/revoke", `{"actor":{"type":"user","id":"alice"},"reason":"lost trust"}`, demoKey("backoffice")...)
	if code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, data)
	}
	st.denied = ask("bob", pay, false)
	st.xss = ask(xssID, `{}`, false)
	body := `{"subject":` + marketingHub + `,"action":{"name":"send_marketing"},"resource":{"type":"user","id":"carol"},"context":{"purpose":"marketing"}}`
	code, data = st.s.do(t, http.MethodPost, "/access/v1/evaluation", body, demoKey("marketing-hub")...)
	var a answer
	if code != http.StatusOK || json.Unmarshal(data, &a) != nil || !a.Decision {
		t.Fatalf("marketing to carol: %d %s", code, data)
	}
	st.consent = a.Context.DecisionID
	return st
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// browser is an HTTP client that keeps cookies and does not follow
// redirects, as the console tests need to see them.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	return b.send(http.MethodGet, path, nil)
}

func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	return b.send(http.MethodPost, path, form)
}

func (b *browser) send(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(context.Background(), method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return res, string(data)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// login signs in with key and returns the answer to the form's POST.
func (b *browser) login(key string) (*http.Response, string) {
	b.t.Helper()
	_, page := b.get("/console/login")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("login form without a CSRF token:\n%s", page)
	}
	return b.post("/console/login", url.Values{"csrf": {m[1]}, "key": {key}})
}

// TestConsoleOverHTTP drives the console of the real server with plain
// HTTP: sign-in rules, the session cookie, the security headers, the
// decisions list and filter, bob's denied payment with its stamps and
// broken link, escaping, the trail page and a verify run, and the trail
// records of the auditor's reads.
func TestConsoleOverHTTP(t *testing.T) {
	st := newConsoleStory(t)
	b := newBrowser(t, st.s.URL)

	res, _ := b.get("/console/decisions")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/console/login" {
		t.Fatalf("signed out: %d %s, want a redirect to the login form", res.StatusCode, res.Header.Get("Location"))
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "style-src 'self'", "img-src 'self' data:", "form-action 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}

	t.Run("keys that are not an auditor's are refused", func(t *testing.T) {
		for key, want := range map[string]string{
			"demo-key-mobile-banking": "application",
			"demo-key-nobody":         "not an auditor key",
			"":                        "not an auditor key",
		} {
			nb := newBrowser(t, st.s.URL)
			res, page := nb.login(key)
			if res.StatusCode != http.StatusForbidden || !strings.Contains(page, want) {
				t.Errorf("login with %q: %d, want 403 saying %q:\n%s", key, res.StatusCode, want, page)
			}
			if res, _ := nb.get("/console/decisions"); res.StatusCode != http.StatusSeeOther {
				t.Errorf("after a refused login with %q the console answers %d", key, res.StatusCode)
			}
		}
	})
	t.Run("a login form from elsewhere is refused", func(t *testing.T) {
		nb := newBrowser(t, st.s.URL)
		res, _ := nb.post("/console/login", url.Values{"csrf": {"0123"}, "key": {"demo-key-auditor"}})
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("login without the form's token: %d, want 403", res.StatusCode)
		}
	})

	res, _ = b.login("demo-key-auditor")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/console/decisions" {
		t.Fatalf("auditor login: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	var sc *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "pdp_console" {
			sc = c
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/console/" || sc.Secure {
		t.Fatalf("session cookie %+v, want HttpOnly, SameSite=Strict, Path=/console/ (not Secure without TLS)", sc)
	}

	t.Run("decisions list filters and pages", func(t *testing.T) {
		res, page := b.get("/console/decisions?subject=user:bob&action=make_payment&result=deny&reason=delegation_revoked&on_behalf_of=user:alice&resource=account:acc-alice&application=mobile-banking&since=2020-01-01T00:00")
		if res.StatusCode != http.StatusOK || !strings.Contains(page, st.denied) || strings.Contains(page, st.allowed) || !strings.Contains(page, "1 matching") {
			t.Fatalf("filtered list: %d, want only %s:\n%s", res.StatusCode, st.denied, page)
		}
		_, page = b.get("/console/decisions?subject=user:bob")
		if i, j := strings.Index(page, st.denied), strings.Index(page, st.allowed); i < 0 || j < 0 || i > j {
			t.Errorf("bob's decisions not newest first (%d, %d)", i, j)
		}
		if res, page := b.get("/console/decisions?subject=bob"); res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "type:id") {
			t.Errorf("malformed filter: %d %s", res.StatusCode, page)
		}
		if res, _ := b.get("/console/decisions?resourse=x"); res.StatusCode != http.StatusBadRequest {
			t.Errorf("unknown filter: %d, want 400", res.StatusCode)
		}
	})
	t.Run("a recorded id that is markup shows as text", func(t *testing.T) {
		for _, path := range []string{"/console/decisions", "/console/decisions/" + st.xss} {
			res, page := b.get(path)
			if res.StatusCode != http.StatusOK || strings.Contains(page, xssID) || !strings.Contains(page, html.EscapeString(xssID)) &&
				!strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
				t.Errorf("%s: %d, the id is not escaped:\n%s", path, res.StatusCode, page)
			}
		}
	})
	t.Run("bob's denied payment: chain with the revoked link, reproduced and anchored", func(t *testing.T) {
		var page string
		eventually(t, "the decision anchored by a checkpoint", func() bool {
			var res *http.Response
			res, page = b.get("/console/decisions/" + st.denied)
			return res.StatusCode == http.StatusOK && strings.Contains(page, "anchored by checkpoint")
		})
		for _, want := range []string{"DENIED", "delegation_revoked", "Reproduced under version", "signed by key", `data-delegation="poa-alice-bob"`,
			`class="edge broken"`, "broken link: revoked", "scope view_statements, make_payment", "≤ 1000 EUR", "user:alice", "user:bob"} {
			if !strings.Contains(page, want) {
				t.Errorf("decision page lacks %q:\n%s", want, page)
			}
		}
		_, page = b.get("/console/decisions/" + st.allowed)
		if !strings.Contains(page, `data-delegation="poa-alice-bob"`) || strings.Contains(page, "broken link") || !strings.Contains(page, "ALLOWED") {
			t.Errorf("the payment before the revoke shows a broken chain:\n%s", page)
		}
		if res, _ := b.get("/console/decisions/no-such-id"); res.StatusCode != http.StatusNotFound {
			t.Errorf("unknown decision: %d, want 404", res.StatusCode)
		}
	})
	t.Run("marketing to carol: her consent on a timeline, with receipts", func(t *testing.T) {
		res, page := b.get("/console/decisions/" + st.consent)
		for _, want := range []string{`id="consent"`, "purpose marketing", "(relied on)", "signed receipt", "this decision", `class="event ev-given used"`} {
			if res.StatusCode != http.StatusOK || !strings.Contains(page, want) {
				t.Errorf("consent decision page (%d) lacks %q:\n%s", res.StatusCode, want, page)
			}
		}
		_, page = b.get("/console/customers/user:carol")
		if !regexp.MustCompile(`<a href="/console/decisions\?consent_grant=[^"]+">1</a>`).MatchString(page) {
			t.Errorf("carol's page does not link her grant to the decision:\n%s", page)
		}
	})
	t.Run("alice's page: the delegation she gave, linked to the decisions that relied on it", func(t *testing.T) {
		res, page := b.get("/console/customers/user:alice")
		if res.StatusCode != http.StatusOK {
			t.Fatalf("customer page: %d\n%s", res.StatusCode, page)
		}
		link := `<a href="/console/decisions?delegation=poa-alice-bob">2</a>`
		for _, want := range []string{"poa-alice-bob", "user:bob", link, "delegations given", "consents", "revoked"} {
			if !strings.Contains(page, want) {
				t.Errorf("customer page lacks %q:\n%s", want, page)
			}
		}
		_, page = b.get("/console/decisions?delegation=poa-alice-bob")
		if !strings.Contains(page, st.allowed) || !strings.Contains(page, st.denied) || !strings.Contains(page, "2 matching") {
			t.Errorf("decisions relying on poa-alice-bob:\n%s", page)
		}
		if res, _ := b.get("/console/customers/alice"); res.StatusCode != http.StatusBadRequest {
			t.Errorf("a customer without a type: %d, want 400", res.StatusCode)
		}
	})
	t.Run("what-if: a freeze on payments flips bob's allowed payment", func(t *testing.T) {
		proposed := copyBundle(t, northbank)
		writeFile(t, filepath.Join(proposed, "policies", "freeze.cedar"), `@id("payment-freeze")
forbid (principal, action == Action::"make_payment", resource);
`)
		_, page := b.get("/console/whatif")
		m := csrfField.FindStringSubmatch(page)
		res, _ := b.post("/console/whatif", url.Values{"csrf": {m[1]}, "policies": {proposed}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("what-if: %d", res.StatusCode)
		}
		run := res.Header.Get("Location")
		eventually(t, "the what-if run to finish", func() bool {
			_, page = b.get(run)
			return !strings.Contains(page, "Running:")
		})
		for _, want := range []string{"1 allow→deny", "payment-freeze", "make_payment", st.allowed} {
			if !strings.Contains(page, want) {
				t.Errorf("what-if page lacks %q:\n%s", want, page)
			}
		}
		res, page = b.post("/console/whatif", url.Values{"csrf": {m[1]}, "policies": {filepath.Join(t.TempDir(), "nothing")}})
		if res.StatusCode == http.StatusSeeOther {
			_, page = b.get(res.Header.Get("Location"))
			eventually(t, "the failing what-if run to finish", func() bool {
				_, page = b.get(res.Header.Get("Location"))
				return !strings.Contains(page, "Running:")
			})
		}
		if !strings.Contains(page, "failed") {
			t.Errorf("a what-if of a missing folder:\n%s", page)
		}
	})
	t.Run("trail page and a verify run", func(t *testing.T) {
		res, page := b.get("/console/trail")
		if res.StatusCode != http.StatusOK || !strings.Contains(page, "Latest checkpoint") || !strings.Contains(page, "Decisions per minute") || !strings.Contains(page, "Unanchored records") {
			t.Fatalf("trail page: %d\n%s", res.StatusCode, page)
		}
		m := csrfField.FindStringSubmatch(page)
		if res, _ := b.post("/console/trail/verify", url.Values{"csrf": {"bad"}}); res.StatusCode != http.StatusForbidden {
			t.Errorf("verify without the session's token: %d, want 403", res.StatusCode)
		}
		res, _ = b.post("/console/trail/verify", url.Values{"csrf": {m[1]}})
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("verify: %d", res.StatusCode)
		}
		run := res.Header.Get("Location")
		eventually(t, "the verify run to finish OK", func() bool {
			_, page = b.get(run)
			return strings.Contains(page, "OK in")
		})
	})
	t.Run("signing out ends the session", func(t *testing.T) {
		_, page := b.get("/console/trail")
		m := csrfField.FindStringSubmatch(page)
		if res, _ := b.post("/console/logout", url.Values{"csrf": {m[1]}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout: %d", res.StatusCode)
		}
		if res, _ := b.get("/console/decisions"); res.StatusCode != http.StatusSeeOther {
			t.Errorf("after signing out: %d, want a redirect to the login form", res.StatusCode)
		}
	})

	// Every read is in the trail, as the audit API's are.
	st.s.stop(t)
	l, err := trail.OpenFile(st.trailDir, trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reads := map[string]int{}
	if err := l.Scan(0, l.Size(), func(r trail.Record) error {
		var body recorder.AdminBody
		if r.Kind == recorder.KindAdmin && json.Unmarshal(r.Body, &body) == nil && body.Action == "trail.read" && body.Application == "internal-audit" {
			detail, _ := body.Detail.(map[string]any)
			ep, _ := detail["endpoint"].(string)
			reads[ep]++
			if ep == "console.explain" && body.Target == "" {
				t.Errorf("explain read recorded without its decision id")
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{"console.decisions", "console.explain", "console.customer", "console.whatif", "console.trail", "console.verify"} {
		if reads[ep] == 0 {
			t.Errorf("no trail.read record of %s by internal-audit; got %v", ep, reads)
		}
	}
}
