package sidecar

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// authenticated guards an AuthZEN endpoint: the sidecar asks the central
// PDP as its application, so on a TCP listener (which anyone on the
// machine can reach) only callers presenting the application's key or the
// sidecar's local token are answered; 401 otherwise. A Unix socket relies
// on its file permissions. With neither key nor token configured (the
// central PDP's authentication off) nothing is asked.
//
// The gateway adapters (/authz/…) are not guarded: they decide only for
// the credential of the request they are shown (a verified JWT), which is
// what the proxy in front of the application does anyway for anyone who
// sends it that request.
func (s *Sidecar) authenticated(h http.HandlerFunc) http.Handler {
	var secrets [][]byte
	for _, v := range []string{s.cfg.APIKey, s.cfg.LocalToken} {
		if v != "" {
			secrets = append(secrets, []byte(v))
		}
	}
	if strings.HasPrefix(s.cfg.Listen, "unix:") || len(secrets) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok {
			for _, want := range secrets {
				if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) == 1 {
					h(w, r)
					return
				}
			}
		}
		s.unauthorized.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="pdp-sidecar"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{
			"error": "the sidecar answers only its application: send Authorization: Bearer <the application's API key or the sidecar's local_token>"})
	})
}
