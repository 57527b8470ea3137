package jwtverify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TokenError reports a bearer token that does not verify. Reason is short
// and safe to show the client (it goes into the WWW-Authenticate
// error_description); Err is the cause, for logs.
type TokenError struct {
	Reason string
	Err    error
}

func (e *TokenError) Error() string {
	if e.Err != nil {
		return "invalid token: " + e.Reason + ": " + e.Err.Error()
	}
	return "invalid token: " + e.Reason
}

func (e *TokenError) Unwrap() error { return e.Err }

// NewTokenError returns a *TokenError: reason for the client, err for logs.
func NewTokenError(reason string, err error) *TokenError {
	return &TokenError{Reason: reason, Err: err}
}

func tokenError(reason string, err error) *TokenError { return NewTokenError(reason, err) }

// MaxTokenBytes bounds the tokens the verifier parses.
const MaxTokenBytes = 16 << 10

// Claims are the claims of a verified token, as JSON decodes them.
type Claims map[string]any

// Verifier verifies JWT bearer tokens: signature against the configured
// JWKS, algorithm from an allow-list, issuer, audience, expiry (required),
// not-before and issued-at with the configured leeway. Safe for
// concurrent use.
type Verifier struct {
	cfg  Config
	algs []jose.SignatureAlgorithm
	keys *keySet
	now  func() time.Time
}

// Deps are a Verifier's collaborators; all optional.
type Deps struct {
	// HTTPClient fetches a JWKS URL; nil means a client with a 10s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// New validates cfg and returns a Verifier. A JWKS file is read at once
// (an error is returned if it cannot be); a JWKS URL is fetched on first
// use, or by Load.
func New(cfg Config, deps Deps) (*Verifier, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{cfg: cfg, algs: cfg.algorithms(), now: deps.Now}
	if v.now == nil {
		v.now = time.Now
	}
	hc := deps.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: jwksFetchTimeout}
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v.keys = &keySet{file: cfg.JWKSFile, url: cfg.JWKSURL, hc: hc, log: log, now: v.now,
		maxAge: cfg.RefreshInterval, minGap: cfg.MinRefreshInterval}
	if cfg.JWKSFile != "" {
		if err := v.Load(context.Background()); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Load (re)loads the keys now, for example at start-up to fail fast on a
// wrong JWKS URL.
func (v *Verifier) Load(ctx context.Context) error {
	v.keys.load.Lock()
	defer v.keys.load.Unlock()
	return v.keys.reload(ctx)
}

// Verify verifies a compact JWS token and returns its claims. A token that
// does not verify is a *TokenError; keys that cannot be loaded give an error
// wrapping ErrKeysUnavailable.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if len(token) > MaxTokenBytes {
		return nil, tokenError("token too large", nil)
	}
	// ParseSigned rejects algorithms outside the allow-list, "none"
	// included, before any key is looked at.
	tok, err := jwt.ParseSigned(token, v.algs)
	if err != nil {
		return nil, tokenError("malformed token or algorithm not accepted", err)
	}
	if len(tok.Headers) != 1 {
		return nil, tokenError("token must have exactly one signature", nil)
	}
	h := tok.Headers[0]
	keys, gen, err := v.keys.current(ctx)
	if err != nil {
		return nil, err
	}
	cands := candidates(keys, h.KeyID, h.Algorithm)
	if len(cands) == 0 && h.KeyID != "" {
		// Perhaps the issuer rotated its keys: reload (rate-limited).
		changed, err := v.keys.refresh(ctx, gen)
		if err != nil {
			return nil, err
		}
		if changed {
			if keys, _, err = v.keys.current(ctx); err != nil {
				return nil, err
			}
			cands = candidates(keys, h.KeyID, h.Algorithm)
		}
	}
	if len(cands) == 0 {
		return nil, tokenError("unknown signing key", fmt.Errorf("kid %q, alg %s", h.KeyID, h.Algorithm))
	}
	var (
		std    jwt.Claims
		claims Claims
		sigErr error
	)
	for _, k := range cands {
		std, claims = jwt.Claims{}, nil
		if sigErr = tok.Claims(k.Key, &std, &claims); sigErr == nil {
			break
		}
	}
	if sigErr != nil {
		return nil, tokenError("signature does not verify", sigErr)
	}
	if std.Expiry == nil {
		return nil, tokenError("token has no expiry", nil)
	}
	err = std.ValidateWithLeeway(jwt.Expected{
		Issuer:      v.cfg.Issuer,
		AnyAudience: jwt.Audience(v.cfg.Audience),
		Time:        v.now(),
	}, v.cfg.Leeway)
	switch {
	case err == nil:
		return claims, nil
	case errors.Is(err, jwt.ErrExpired):
		return nil, tokenError("token expired", err)
	case errors.Is(err, jwt.ErrNotValidYet):
		return nil, tokenError("token not valid yet", err)
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return nil, tokenError("wrong issuer", err)
	case errors.Is(err, jwt.ErrInvalidAudience):
		return nil, tokenError("wrong audience", err)
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return nil, tokenError("token issued in the future", err)
	default:
		return nil, tokenError("claims do not validate", err)
	}
}

// candidates are the keys that may have signed a token with key id kid
// (all keys when the token names none) and algorithm alg.
func candidates(keys []jose.JSONWebKey, kid, alg string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		out = append(out, k)
	}
	return out
}
