package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Cookie names: the session, and the login form's double-submit token.
const (
	sessionCookie = "pdp_console"
	loginCookie   = "pdp_console_login"
)

// maxSessions bounds the session map; when full, expired sessions are
// dropped, and if none has expired the oldest goes.
const maxSessions = 10000

// keys tells auditor keys from application keys, by digest.
type keys struct {
	auditors map[[sha256.Size]byte]string
	apps     map[[sha256.Size]byte]string
}

func newKeys(auditors, apps map[string]string) keys {
	conv := func(m map[string]string) map[[sha256.Size]byte]string {
		out := make(map[[sha256.Size]byte]string, len(m))
		for digest, who := range m {
			var d [sha256.Size]byte
			if _, err := hex.Decode(d[:], []byte(strings.ToLower(digest))); err == nil {
				out[d] = who
			}
		}
		return out
	}
	return keys{auditors: conv(auditors), apps: conv(apps)}
}

// off: no key of any kind is configured (authentication off, loopback
// only): the console opens for the auditor "local".
func (k keys) off() bool { return len(k.auditors) == 0 && len(k.apps) == 0 }

// keyKind is what a key entered at login turned out to be.
type keyKind int

const (
	keyUnknown keyKind = iota
	keyApplication
	keyAuditor
)

// classify returns the auditor a key belongs to, or what else it is.
func (k keys) classify(token string) (string, keyKind) {
	token = strings.TrimSpace(token)
	if k.off() {
		return "local", keyAuditor
	}
	if token == "" {
		return "", keyUnknown
	}
	d := sha256.Sum256([]byte(token))
	if who, ok := k.auditors[d]; ok {
		return who, keyAuditor
	}
	if app, ok := k.apps[d]; ok {
		return app, keyApplication
	}
	return "", keyUnknown
}

// session is one signed-in browser.
type session struct {
	auditor string
	csrf    string
	expires time.Time
	created time.Time
}

// sessions is the server-side session map, keyed by the SHA-256 of the
// cookie's value (a leaked map shows no usable cookie).
type sessions struct {
	mu  sync.Mutex
	m   map[[sha256.Size]byte]*session
	ttl time.Duration
	now func() time.Time
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{m: map[[sha256.Size]byte]*session{}, ttl: ttl, now: now}
}

// randomToken is 32 random bytes in hex.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return hex.EncodeToString(b[:])
}

// create opens a session and returns its cookie value.
func (s *sessions) create(auditor string) (string, *session) {
	token := randomToken()
	now := s.now()
	ses := &session{auditor: auditor, csrf: randomToken(), expires: now.Add(s.ttl), created: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxSessions {
		s.evictLocked(now)
	}
	s.m[sha256.Sum256([]byte(token))] = ses
	return token, ses
}

func (s *sessions) evictLocked(now time.Time) {
	var oldestKey [sha256.Size]byte
	var oldest *session
	for k, v := range s.m {
		if !now.Before(v.expires) {
			delete(s.m, k)
			continue
		}
		if oldest == nil || v.created.Before(oldest.created) {
			oldest, oldestKey = v, k
		}
	}
	if len(s.m) >= maxSessions && oldest != nil {
		delete(s.m, oldestKey)
	}
}

// get returns the live session of a cookie value.
func (s *sessions) get(token string) (*session, bool) {
	if token == "" {
		return nil, false
	}
	k := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	ses, ok := s.m[k]
	if !ok {
		return nil, false
	}
	if !s.now().Before(ses.expires) {
		delete(s.m, k)
		return nil, false
	}
	return ses, true
}

func (s *sessions) drop(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(token)))
}

// cookie builds a console cookie: HttpOnly, SameSite=Strict, scoped to
// the console, Secure when the request came over TLS.
func cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}

// handlerFunc is a page of a signed-in auditor.
type handlerFunc func(w http.ResponseWriter, r *http.Request, ses *session)

// signedIn passes the request on with its session, or sends the browser
// to the login form. POSTs must carry the session's CSRF token and come
// from this origin.
func (c *Console) signedIn(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(sessionCookie)
		var ses *session
		ok := false
		if err == nil {
			ses, ok = c.sessions.get(ck.Value)
		}
		if !ok {
			if r.Method != http.MethodGet {
				c.renderError(w, r, nil, http.StatusForbidden, "your console session has ended: sign in again")
				return
			}
			http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost && !c.sameOrigin(r, ses.csrf) {
			c.renderError(w, r, ses, http.StatusForbidden, "this form did not come from this console (CSRF check failed)")
			return
		}
		h(w, r, ses)
	}
}

// sameOrigin checks a form POST: the token field equals want, and the
// browser does not say the request came from another site.
func (c *Console) sameOrigin(r *http.Request, want string) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	got := r.PostFormValue("csrf")
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		if _, ok := c.sessions.get(ck.Value); ok {
			http.Redirect(w, r, Prefix+"decisions", http.StatusSeeOther)
			return
		}
	}
	token := randomToken()
	http.SetCookie(w, cookie(r, loginCookie, token, 600))
	c.render(w, r, http.StatusOK, "login", nil, map[string]any{"CSRF": token, "AuthOff": c.keys.off()})
}

// errKeyRefused are the login refusals' messages.
const (
	msgAppKey     = "this is an application's API key: the console is for auditor keys only (auth.auditor_keys)"
	msgUnknownKey = "this key is not an auditor key of this PDP"
)

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	ck, err := r.Cookie(loginCookie)
	if err != nil || !c.sameOrigin(r, ck.Value) {
		c.renderError(w, r, nil, http.StatusForbidden, "the login form expired or did not come from this console: reload it and try again")
		return
	}
	who, kind := c.keys.classify(r.PostFormValue("key"))
	switch kind {
	case keyApplication:
		c.log.Warn("console: login with an application key refused", "application", who)
		c.renderError(w, r, nil, http.StatusForbidden, msgAppKey)
		return
	case keyUnknown:
		c.log.Warn("console: login with an unknown key refused")
		c.renderError(w, r, nil, http.StatusForbidden, msgUnknownKey)
		return
	}
	token, _ := c.sessions.create(who)
	http.SetCookie(w, cookie(r, loginCookie, "", -1))
	http.SetCookie(w, cookie(r, sessionCookie, token, 0))
	c.log.Info("console: auditor signed in", "auditor", who)
	http.Redirect(w, r, Prefix+"decisions", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		c.sessions.drop(ck.Value)
	}
	http.SetCookie(w, cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}
