package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ciampdp/pdp/pdp"
)

// errNoCredentials means the request carries no credentials at all: 401
// with a bare challenge (RFC 6750 §3.1: no error code).
var errNoCredentials = errors.New("no credentials")

// identity is who is asking, as the gateway established it.
type identity struct {
	subject pdp.Entity
	// onBehalfOf is context.on_behalf_of ({"type":…,"id":…}), or nil.
	onBehalfOf map[string]any
	// claims are the verified token's claims (nil in header mode).
	claims Claims
}

// authenticator finds the subject of a request: from a verified bearer
// token, or from the trusted header.
type authenticator struct {
	cfg      SubjectConfig
	verifier *Verifier // nil in header mode
}

// authenticate returns the identity of a request with headers h. Errors:
// errNoCredentials, a *TokenError, or one wrapping ErrKeysUnavailable.
func (a *authenticator) authenticate(ctx context.Context, h http.Header) (identity, error) {
	var id identity
	if a.verifier == nil {
		vs := h.Values(a.cfg.Header)
		if len(vs) == 0 || strings.TrimSpace(vs[0]) == "" {
			return id, errNoCredentials
		}
		if len(vs) > 1 {
			return id, tokenError("ambiguous subject header", fmt.Errorf("%d %s headers", len(vs), a.cfg.Header))
		}
		id.subject = pdp.Entity{Type: a.cfg.Type, ID: strings.TrimSpace(vs[0])}
	} else {
		token, err := bearerToken(h)
		if err != nil {
			return id, err
		}
		claims, err := a.verifier.Verify(ctx, token)
		if err != nil {
			return id, err
		}
		sub, _ := claims[a.cfg.JWT.SubjectClaim].(string)
		if sub == "" {
			return id, tokenError("no subject claim", fmt.Errorf("claim %q missing or not a string", a.cfg.JWT.SubjectClaim))
		}
		id.subject = pdp.Entity{Type: a.cfg.Type, ID: sub}
		id.claims = claims
		if c := a.cfg.JWT.OnBehalfOfClaim; c != "" {
			if id.onBehalfOf, err = a.onBehalfOfClaim(claims[c]); err != nil {
				return id, tokenError("malformed "+c+" claim", err)
			}
		}
	}
	if id.onBehalfOf == nil && a.cfg.OnBehalfOfHeader != "" {
		if v := strings.TrimSpace(h.Get(a.cfg.OnBehalfOfHeader)); v != "" {
			id.onBehalfOf = map[string]any{"type": a.cfg.OnBehalfOfType, "id": v}
		}
	}
	return id, nil
}

// onBehalfOfClaim reads the acting-for claim: absent, an id, or an object
// with a type and an id.
func (a *authenticator) onBehalfOfClaim(c any) (map[string]any, error) {
	switch v := c.(type) {
	case nil:
		return nil, nil
	case string:
		if v == "" {
			return nil, nil
		}
		return map[string]any{"type": a.cfg.OnBehalfOfType, "id": v}, nil
	case map[string]any:
		typ, _ := v["type"].(string)
		id, _ := v["id"].(string)
		if typ == "" || id == "" {
			return nil, errors.New(`want {"type":…,"id":…} with non-empty strings`)
		}
		return map[string]any{"type": typ, "id": id}, nil
	}
	return nil, fmt.Errorf("want a string or an object, got %T", c)
}

// bearerToken returns the token of the single "Authorization: Bearer"
// header; errNoCredentials when there is none (or another scheme).
func bearerToken(h http.Header) (string, error) {
	vs := h.Values("Authorization")
	if len(vs) == 0 {
		return "", errNoCredentials
	}
	if len(vs) > 1 {
		return "", tokenError("more than one Authorization header", nil)
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(vs[0]), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", errNoCredentials
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", errNoCredentials
	}
	return token, nil
}
