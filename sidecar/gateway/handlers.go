package gateway

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// Headers of the proxy adapters.
const (
	// HeaderOriginalMethod and HeaderOriginalURI carry the original
	// request to the nginx handler (set with proxy_set_header).
	HeaderOriginalMethod = "X-Original-Method"
	HeaderOriginalURI    = "X-Original-URI"
	// HeaderDecisionID is on every answer: the PDP's decision id, or the
	// gateway's own for answers it gives itself.
	HeaderDecisionID = "X-Decision-Id"
	// HeaderDecisionReasons lists the reason codes, comma-separated.
	HeaderDecisionReasons = "X-Decision-Reasons"
	// HeaderDecisionObligations lists the obligations, comma-separated.
	HeaderDecisionObligations = "X-Decision-Obligations"
)

// Handler serves both adapters: the nginx handler at Config.NginxPath and
// the Envoy handler under Config.EnvoyPrefix. Other paths get 404.
func (g *Gateway) Handler() http.Handler {
	nginx, envoy := g.NginxHandler(), g.EnvoyHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		switch {
		case p == g.cfg.NginxPath:
			nginx.ServeHTTP(w, r)
		case p == g.cfg.EnvoyPrefix || strings.HasPrefix(p, g.cfg.EnvoyPrefix+"/"):
			envoy.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// NginxHandler answers nginx auth_request subrequests. The original method
// and URI come from the X-Original-Method and X-Original-URI headers (the
// subrequest's own method and path do not matter: nginx may send GET or
// the original method), the credentials and other headers from the
// subrequest, which carries the client's headers.
//
// Answers: 200 allow, 401 (with WWW-Authenticate, which nginx passes to
// the client), 403 deny, 503 when no decision could be made — nginx treats
// any status but 2xx, 401 and 403 as an error and answers the client 500,
// so the request is refused either way (fail closed). A subrequest
// without the two headers gets 400 (also an error for nginx): the proxy is
// misconfigured.
func (g *Gateway) NginxHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := strings.TrimSpace(r.Header.Get(HeaderOriginalMethod))
		uri := strings.TrimSpace(r.Header.Get(HeaderOriginalURI))
		if method == "" || uri == "" {
			writeError(w, http.StatusBadRequest, "bad_request",
				"nginx must set "+HeaderOriginalMethod+" and "+HeaderOriginalURI+" (see the gateway README)")
			return
		}
		path, query := splitURI(uri)
		v := g.Check(r.Context(), Request{Method: method, Path: path, RawQuery: query, Header: r.Header})
		g.write(w, v)
	})
}

// EnvoyHandler answers Envoy ext_authz checks in HTTP service mode. Envoy
// sends the original method, the original path appended to path_prefix
// (Config.EnvoyPrefix), and the allowed original headers.
//
// Answers: 200 allow (with X-Decision-Id, and Config.SubjectHeader when
// set, for allowed_upstream_headers), 401, 403, and 503 when no decision
// could be made, which Envoy treats as an authorization-service error and
// turns into status_on_error (403 by default) unless failure_mode_allow is
// set — never set it.
func (g *Gateway) EnvoyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		rest, ok := strings.CutPrefix(p, g.cfg.EnvoyPrefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if rest == "" {
			rest = "/"
		}
		v := g.Check(r.Context(), Request{Method: r.Method, Path: rest, RawQuery: r.URL.RawQuery, Header: r.Header})
		g.write(w, v)
	})
}

// splitURI splits an nginx $request_uri into the escaped path and the raw
// query. An absolute-form URI (http://host/path) is reduced to its path.
// A '#' is kept where it is: nginx passes the target to the upstream as the
// client sent it, fragment included, so the gateway must not decide on a
// shorter one (SplitPath and the query check refuse it).
func splitURI(uri string) (string, string) {
	if !strings.HasPrefix(uri, "/") {
		if strings.Contains(uri, "#") {
			return uri, "" // url.Parse would drop the fragment: not a path, SplitPath rejects it
		}
		if u, err := url.Parse(uri); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			p := u.EscapedPath()
			if p == "" {
				p = "/"
			}
			return p, u.RawQuery
		}
		return uri, "" // not a path: SplitPath rejects it
	}
	path, query, _ := strings.Cut(uri, "?")
	return path, query
}

// errorBody is the JSON body of a non-200 answer; the same shape as the
// client middleware's.
type errorBody struct {
	Error       string   `json:"error"`
	Message     string   `json:"message,omitempty"`
	Reasons     []string `json:"reasons,omitempty"`
	Obligations []string `json:"obligations,omitempty"`
	DecisionID  string   `json:"decision_id,omitempty"`
}

// write sends a verdict: status, decision headers, and for a refusal a
// small JSON body (Envoy passes it to the client; nginx drops it).
func (g *Gateway) write(w http.ResponseWriter, v Verdict) {
	h := w.Header()
	// An authorization answer is about one request: never cache it.
	h.Set("Cache-Control", "no-store")
	h.Set(HeaderDecisionID, v.DecisionID)
	if len(v.Reasons) > 0 {
		h.Set(HeaderDecisionReasons, headerSafe(v.Reasons))
	}
	if len(v.Obligations) > 0 {
		h.Set(HeaderDecisionObligations, headerSafe(v.Obligations))
	}
	if v.Allowed() {
		if g.cfg.SubjectHeader != "" {
			// Set even when empty (an unmatched request under "unmatched:
			// allow"), so that a proxy copying it upstream overwrites any
			// value the client sent.
			h.Set(g.cfg.SubjectHeader, v.Subject)
		}
		if g.cfg.ActingForHeader != "" {
			h.Set(g.cfg.ActingForHeader, v.OnBehalfOf) // even when empty, likewise
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if v.Challenge != "" {
		h.Set("WWW-Authenticate", v.Challenge)
	}
	code := map[int]string{
		http.StatusUnauthorized:       "unauthorized",
		http.StatusForbidden:          "forbidden",
		http.StatusServiceUnavailable: "unavailable",
	}[v.Status]
	writeJSON(w, v.Status, errorBody{Error: code, Reasons: v.Reasons, Obligations: v.Obligations, DecisionID: v.DecisionID})
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(HeaderDecisionID, newLocalID())
	writeJSON(w, status, errorBody{Error: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		b = []byte(`{"error":"internal_error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
