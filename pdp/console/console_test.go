package console

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/trail"
)

func digest(key string) string {
	d := sha256.Sum256([]byte(key))
	return hex.EncodeToString(d[:])
}

// clock is a settable time for session expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestConsole is a console over an empty file trail, with one auditor
// key ("auditor-key") and one application key ("app-key").
func newTestConsole(t testing.TB, clk *clock) *Console {
	t.Helper()
	l, err := trail.OpenFile(t.TempDir(), trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	c, err := New(Config{
		AuditorKeys: map[string]string{digest("auditor-key"): "internal-audit"},
		APIKeys:     map[string]string{digest("app-key"): "mobile-banking"},
		SessionTTL:  time.Hour,
	}, Deps{Auditor: audit.Service{Trail: l, Index: audit.NewIndex()}, Trail: l, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// client keeps the cookies of one browser against a console handler.
type client struct {
	t       *testing.T
	h       http.Handler
	cookies map[string]*http.Cookie
}

func (cl *client) do(method, path string, form url.Values, header ...string) *httptest.ResponseRecorder {
	cl.t.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	for _, c := range cl.cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	cl.h.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(cl.cookies, c.Name)
		} else {
			cl.cookies[c.Name] = c
		}
	}
	return rec
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func (cl *client) login(key string, header ...string) *httptest.ResponseRecorder {
	cl.t.Helper()
	m := csrfRe.FindStringSubmatch(cl.do(http.MethodGet, "/console/login", nil).Body.String())
	if m == nil {
		cl.t.Fatal("no CSRF token on the login form")
	}
	return cl.do(http.MethodPost, "/console/login", url.Values{"csrf": {m[1]}, "key": {key}}, header...)
}

func TestLogin(t *testing.T) {
	for _, tc := range []struct {
		name   string
		key    string
		header []string
		status int
		want   string
	}{
		{"auditor key", "auditor-key", nil, http.StatusSeeOther, ""},
		{"auditor key with spaces around", "  auditor-key\n", nil, http.StatusSeeOther, ""},
		{"application key", "app-key", nil, http.StatusForbidden, "application"},
		{"unknown key", "guess", nil, http.StatusForbidden, "not an auditor key"},
		{"no key", "", nil, http.StatusForbidden, "not an auditor key"},
		{"auditor key from another site", "auditor-key", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden, "did not come from this console"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := &client{t: t, h: newTestConsole(t, &clock{t: time.Now()}), cookies: map[string]*http.Cookie{}}
			rec := cl.login(tc.key, tc.header...)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.want) {
				t.Fatalf("%d %s, want %d with %q", rec.Code, rec.Body, tc.status, tc.want)
			}
			_, signedIn := cl.cookies[sessionCookie]
			if signedIn != (tc.status == http.StatusSeeOther) {
				t.Fatalf("session cookie set: %v", signedIn)
			}
			if !signedIn {
				return
			}
			c := cl.cookies[sessionCookie]
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != Prefix {
				t.Errorf("cookie %+v", c)
			}
			if rec := cl.do(http.MethodGet, "/console/decisions", nil); rec.Code != http.StatusOK {
				t.Errorf("decisions after login: %d %s", rec.Code, rec.Body)
			}
		})
	}
}

func TestLoginFormTokenIsChecked(t *testing.T) {
	cl := &client{t: t, h: newTestConsole(t, &clock{t: time.Now()}), cookies: map[string]*http.Cookie{}}
	cl.do(http.MethodGet, "/console/login", nil)
	if rec := cl.do(http.MethodPost, "/console/login", url.Values{"csrf": {"forged"}, "key": {"auditor-key"}}); rec.Code != http.StatusForbidden {
		t.Fatalf("forged token: %d", rec.Code)
	}
	delete(cl.cookies, loginCookie)
	if rec := cl.do(http.MethodPost, "/console/login", url.Values{"key": {"auditor-key"}}); rec.Code != http.StatusForbidden {
		t.Fatalf("no token: %d", rec.Code)
	}
}

func TestSessionExpiresAndPostsNeedItsToken(t *testing.T) {
	clk := &clock{t: time.Now()}
	cl := &client{t: t, h: newTestConsole(t, clk), cookies: map[string]*http.Cookie{}}
	cl.login("auditor-key")
	page := cl.do(http.MethodGet, "/console/trail", nil)
	m := csrfRe.FindStringSubmatch(page.Body.String())
	if page.Code != http.StatusOK || m == nil {
		t.Fatalf("trail page: %d %s", page.Code, page.Body)
	}
	if rec := cl.do(http.MethodPost, "/console/trail/verify", url.Values{"csrf": {"0"}}); rec.Code != http.StatusForbidden {
		t.Errorf("a POST with another token: %d", rec.Code)
	}
	if rec := cl.do(http.MethodPost, "/console/trail/verify", url.Values{"csrf": {m[1]}}, "Sec-Fetch-Site", "same-site"); rec.Code != http.StatusForbidden {
		t.Errorf("a POST from a sibling site: %d", rec.Code)
	}
	clk.add(59 * time.Minute)
	if rec := cl.do(http.MethodGet, "/console/decisions", nil); rec.Code != http.StatusOK {
		t.Fatalf("within the TTL: %d", rec.Code)
	}
	clk.add(2 * time.Minute)
	if rec := cl.do(http.MethodGet, "/console/decisions", nil); rec.Code != http.StatusSeeOther {
		t.Fatalf("after the TTL: %d, want a redirect to the login form", rec.Code)
	}
	if rec := cl.do(http.MethodPost, "/console/trail/verify", url.Values{"csrf": {m[1]}}); rec.Code != http.StatusForbidden {
		t.Fatalf("a POST after the TTL: %d", rec.Code)
	}
}

// TestEveryAnswerIsLockedDown: every route answers with the strict CSP and
// the other headers, and no page has a script or an inline style.
func TestEveryAnswerIsLockedDown(t *testing.T) {
	cl := &client{t: t, h: newTestConsole(t, &clock{t: time.Now()}), cookies: map[string]*http.Cookie{}}
	check := func(path string, rec *httptest.ResponseRecorder) {
		t.Helper()
		h := rec.Header()
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "style-src 'self' 'sha256-", "img-src 'self' data:", "form-action 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") == "" {
			t.Errorf("%s: headers %v", path, h)
		}
		body := strings.ToLower(rec.Body.String())
		if strings.Contains(body, "<script") || strings.Contains(body, " style=") || strings.Contains(body, "<style") {
			t.Errorf("%s: a script or inline style in the page", path)
		}
	}
	for _, p := range []string{"/console", "/console/", "/console/login", "/console/decisions", "/console/nope", "/console/static/console.css"} {
		check(p, cl.do(http.MethodGet, p, nil))
	}
	cl.login("auditor-key")
	for _, p := range []string{"/console/decisions", "/console/decisions?subject=user:bob", "/console/decisions/x", "/console/trail", "/console/trail/verify/x", "/console/nope"} {
		check(p, cl.do(http.MethodGet, p, nil))
	}
}

func TestAuthOffOpensForLocal(t *testing.T) {
	l, err := trail.OpenFile(t.TempDir(), trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := New(Config{}, Deps{Auditor: audit.Service{Trail: l}})
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{t: t, h: c, cookies: map[string]*http.Cookie{}}
	if rec := cl.login(""); rec.Code != http.StatusSeeOther {
		t.Fatalf("login with authentication off: %d %s", rec.Code, rec.Body)
	}
	if rec := cl.do(http.MethodGet, "/console/decisions", nil); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "auditor local") {
		t.Fatalf("decisions: %d %s", rec.Code, rec.Body)
	}
}

func TestNewNeedsAnAuditor(t *testing.T) {
	if _, err := New(Config{}, Deps{}); err != ErrDeps {
		t.Fatalf("%v", err)
	}
}

func TestSessionMapIsBounded(t *testing.T) {
	clk := &clock{t: time.Now()}
	s := newSessions(time.Hour, clk.now)
	first, _ := s.create("a")
	for range maxSessions {
		clk.add(time.Millisecond)
		s.create("b")
	}
	if len(s.m) > maxSessions {
		t.Fatalf("%d sessions", len(s.m))
	}
	if _, ok := s.get(first); ok {
		t.Fatal("the oldest session survived a full map")
	}
}

// fuzzConsole is a signed-in console for fuzz tests.
type fuzzConsole struct {
	h      *Console
	cookie *http.Cookie
}

func newFuzzConsole(f *testing.F) *fuzzConsole {
	c := newTestConsole(f, &clock{t: time.Now()})
	token, _ := c.sessions.create("fuzz")
	return &fuzzConsole{h: c, cookie: &http.Cookie{Name: sessionCookie, Value: token}}
}

func (fc *fuzzConsole) get(t *testing.T, target string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	u, err := url.Parse(target)
	if err != nil {
		t.Skip()
	}
	req.URL = u
	req.AddCookie(fc.cookie)
	rec := httptest.NewRecorder()
	fc.h.ServeHTTP(rec, req)
	return rec
}
