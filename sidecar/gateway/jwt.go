package gateway

import (
	"fmt"

	"github.com/ciampdp/pdp/pdp/jwtverify"
)

// The gateway verifies bearer tokens with the verifier the PDP uses for
// actor tokens too (package jwtverify); these names keep the gateway's
// API as it was.
type (
	// TokenError reports a bearer token that does not verify.
	TokenError = jwtverify.TokenError
	// Claims are the claims of a verified token.
	Claims = jwtverify.Claims
	// Verifier verifies JWT bearer tokens against a JWKS.
	Verifier = jwtverify.Verifier
	// VerifierDeps are a Verifier's collaborators; all optional.
	VerifierDeps = jwtverify.Deps
)

// ErrKeysUnavailable is returned when no verification keys can be loaded:
// an infrastructure failure, answered like an unreachable PDP (deny), not
// as the caller's fault.
var ErrKeysUnavailable = jwtverify.ErrKeysUnavailable

func tokenError(reason string, err error) *TokenError { return jwtverify.NewTokenError(reason, err) }

// NewVerifier validates cfg and returns a Verifier. A JWKS file is read at
// once (an error is returned if it cannot be); a JWKS URL is fetched on
// first use, or by Load.
func NewVerifier(cfg JWTConfig, deps VerifierDeps) (*Verifier, error) {
	if !cfg.enabled() {
		return nil, fmt.Errorf("%w: set jwks_file or jwks_url", ErrJWT)
	}
	cfg = SubjectConfig{JWT: cfg}.withDefaults().JWT
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return jwtverify.New(cfg.verifier(), deps)
}
