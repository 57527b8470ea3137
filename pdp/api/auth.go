package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// errUnauthenticated is answered with 401 and a WWW-Authenticate challenge.
var errUnauthenticated = errors.New("missing or invalid API key")

// keyring maps the SHA-256 digest of each accepted token to its
// application. A nil keyring means authentication is off.
type keyring map[[sha256.Size]byte]string

// newKeyring converts the validated Config.APIKeys (hex digests, either case).
func newKeyring(keys map[string]string) keyring {
	if len(keys) == 0 {
		return nil
	}
	k := make(keyring, len(keys))
	for digest, app := range keys {
		var d [sha256.Size]byte
		// Validate has checked the digest.
		if _, err := hex.Decode(d[:], []byte(digest)); err == nil {
			k[d] = app
		}
	}
	return k
}

// applications lists the distinct application ids, plus "" when
// authentication is off.
func (k keyring) applications() []string {
	if k == nil {
		return []string{""}
	}
	seen := make(map[string]bool, len(k))
	var apps []string
	for _, app := range k {
		if !seen[app] {
			seen[app] = true
			apps = append(apps, app)
		}
	}
	return apps
}

// authenticate returns the application that holds the request's token:
// "Authorization: Bearer <token>", or the bare token as interop harnesses
// send it. Only the digest is compared, through a map lookup; as no one can
// choose a token for a wanted digest, lookup timing reveals nothing useful.
func (k keyring) authenticate(r *http.Request) (string, error) {
	if k == nil {
		return "", nil
	}
	token := strings.TrimSpace(r.Header.Get(echo.HeaderAuthorization))
	if len(token) > 7 && strings.EqualFold(token[:7], "bearer ") {
		token = strings.TrimSpace(token[7:])
	}
	if token == "" {
		return "", errUnauthenticated
	}
	app, ok := k[sha256.Sum256([]byte(token))]
	if !ok {
		return "", errUnauthenticated
	}
	return app, nil
}

// requireAuth is the middleware form of authenticate, for endpoints that do
// not need the application id.
func (k keyring) requireAuth(next echo.HandlerFunc) echo.HandlerFunc {
	if k == nil {
		return next
	}
	return func(c echo.Context) error {
		if _, err := k.authenticate(c.Request()); err != nil {
			return err
		}
		return next(c)
	}
}
