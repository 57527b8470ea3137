// Package jwtverify verifies JWTs against the public keys of an issuer's
// JWKS (a file, or an https URL fetched with a timeout and cached): the
// one verifier shared by the sidecar's gateway (subjects from bearer
// tokens) and the PDP's actor proof (Actor-Token on admin changes).
package jwtverify

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults applied to zero Config fields.
const (
	DefaultLeeway             = 30 * time.Second
	MaxLeeway                 = 5 * time.Minute
	DefaultRefreshInterval    = time.Hour
	DefaultMinRefreshInterval = 30 * time.Second
)

// DefaultAlgorithms are the JWS algorithms accepted when none are
// configured: asymmetric only. "none" and the HMAC algorithms are never
// accepted (a JWKS holds public keys).
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// ErrConfig: a Config is not valid.
var ErrConfig = errors.New("invalid JWT verification config")

// Config says whose tokens a Verifier accepts.
type Config struct {
	// JWKSFile is a local JWKS file; JWKSURL an https URL. One of them.
	JWKSFile string
	JWKSURL  string
	// Issuer must equal the iss claim. Required.
	Issuer string
	// Audience: the aud claim must contain one of them. Required.
	Audience []string
	// Algorithms accepted in the token header; default DefaultAlgorithms.
	Algorithms []string
	// Leeway for exp, nbf and iat. Default 30s, at most 5m.
	Leeway time.Duration
	// RefreshInterval is how old the cached keys may get before the next
	// verification reloads them (default 1h); MinRefreshInterval the least
	// time between reloads caused by an unknown key id (default 30s).
	RefreshInterval    time.Duration
	MinRefreshInterval time.Duration
}

// Enabled reports whether a key source is configured.
func (c Config) Enabled() bool { return c.JWKSFile != "" || c.JWKSURL != "" }

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if len(c.Algorithms) == 0 {
		c.Algorithms = DefaultAlgorithms
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.MinRefreshInterval == 0 {
		c.MinRefreshInterval = DefaultMinRefreshInterval
	}
	return c
}

// Validate reports the first problem of c (after defaults), wrapping
// ErrConfig.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case !c.Enabled():
		return fmt.Errorf("%w: set jwks_file or jwks_url", ErrConfig)
	case c.JWKSFile != "" && c.JWKSURL != "":
		return fmt.Errorf("%w: set jwks_file or jwks_url, not both", ErrConfig)
	case c.Issuer == "":
		return fmt.Errorf("%w: issuer is required", ErrConfig)
	case len(c.Audience) == 0:
		return fmt.Errorf("%w: audience is required", ErrConfig)
	case c.Leeway < 0 || c.Leeway > MaxLeeway:
		return fmt.Errorf("%w: leeway %v must be between 0 and %v", ErrConfig, c.Leeway, MaxLeeway)
	case c.RefreshInterval < 0 || c.MinRefreshInterval < 0:
		return fmt.Errorf("%w: refresh intervals must not be negative", ErrConfig)
	}
	for _, a := range c.Audience {
		if a == "" {
			return fmt.Errorf("%w: audience must not contain an empty value", ErrConfig)
		}
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("%w: jwks_url %q must be an absolute https URL", ErrConfig, c.JWKSURL)
		}
	}
	for _, a := range c.Algorithms {
		if !slices.Contains(DefaultAlgorithms, a) {
			return fmt.Errorf("%w: algorithm %q is not accepted (use asymmetric ones: %s)", ErrConfig, a, strings.Join(DefaultAlgorithms, ", "))
		}
	}
	return nil
}

// algorithms converts the configured names.
func (c Config) algorithms() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(c.Algorithms))
	for i, a := range c.Algorithms {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}
