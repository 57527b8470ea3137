package gateway

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/jwtverify"
)

// Defaults applied to zero Config fields.
const (
	DefaultNginxPath          = "/authz/nginx"
	DefaultEnvoyPrefix        = "/authz/envoy"
	DefaultTimeout            = 2 * time.Second
	DefaultSubjectType        = "user"
	DefaultSubjectClaim       = "sub"
	DefaultRealm              = "pdp"
	DefaultLeeway             = 30 * time.Second
	MaxLeeway                 = 5 * time.Minute
	DefaultRefreshInterval    = time.Hour
	DefaultMinRefreshInterval = 30 * time.Second
)

// What to do with a request that no route matches.
const (
	UnmatchedDeny  = "deny"
	UnmatchedAllow = "allow"
)

// Sentinel errors of Config.Validate; each error names the route or field.
var (
	ErrRoute   = errors.New("invalid route")
	ErrSubject = errors.New("invalid subject config")
	ErrJWT     = errors.New("invalid jwt config")
	ErrConfig  = errors.New("invalid gateway config")
)

// DefaultAlgorithms are the JWS algorithms accepted when none are
// configured: asymmetric only. "none" and the HMAC algorithms are never
// accepted (a JWKS holds public keys).
var DefaultAlgorithms = jwtverify.DefaultAlgorithms

// Config is the gateway's configuration, as viper (mapstructure) fills it
// from a YAML section like:
//
//	unmatched: deny
//	subject:
//	  type: user
//	  jwt:
//	    jwks_url: https://idp.example/.well-known/jwks.json
//	    issuer: https://idp.example/
//	    audience: [mobile-banking]
//	    on_behalf_of_claim: act_for
//	routes:
//	  - name: payments
//	    methods: [POST]
//	    path: /accounts/{id}/payments
//	    action: make_payment
//	    resource: {type: account, id: "{id}"}
//	    context:
//	      purpose: account_servicing
//	      amount: header:X-Payment-Amount|number
//	      currency: header:X-Payment-Currency
type Config struct {
	// Routes map requests to evaluations; the first match wins.
	Routes []RouteConfig `mapstructure:"routes"`
	// Unmatched is what a request that no route matches gets: "deny"
	// (403, the default) or "allow" (200 without asking the PDP).
	Unmatched string `mapstructure:"unmatched"`
	// Subject says how the gateway learns who is asking.
	Subject SubjectConfig `mapstructure:"subject"`
	// Timeout bounds one evaluation; the answer is deny (fail closed) when
	// it passes. Default 2s.
	Timeout time.Duration `mapstructure:"timeout"`
	// NginxPath is where the nginx auth_request handler listens
	// (default /authz/nginx); EnvoyPrefix is the Envoy ext_authz
	// path_prefix (default /authz/envoy).
	NginxPath   string `mapstructure:"nginx_path"`
	EnvoyPrefix string `mapstructure:"envoy_prefix"`
	// SubjectHeader, if set, names a header carrying the authenticated
	// subject id on allowed answers (for example X-Authz-Subject), which
	// the proxy can pass upstream.
	SubjectHeader string `mapstructure:"subject_header"`
	// ActingForHeader, if set, names a header carrying, on allowed
	// answers, whom the decision let the subject act for ("user:alice"):
	// set only when the PDP found an active delegation, empty otherwise
	// (also when the request named the subject itself), so that a proxy
	// copying it upstream overwrites any value the client sent. The
	// client's own on-behalf-of header must never reach the upstream.
	ActingForHeader string `mapstructure:"acting_for_header"`
}

// RouteConfig is one entry of the route table.
type RouteConfig struct {
	// Name identifies the route in errors and logs; default "METHODS path".
	Name string `mapstructure:"name"`
	// Methods are the HTTP methods the route matches, or ["*"] for any.
	// Required: a forgotten method must not map a DELETE to a read action.
	Methods []string `mapstructure:"methods"`
	// Path is a path template, for example /accounts/{id}/payments.
	Path string `mapstructure:"path"`
	// Action is the AuthZEN action name.
	Action   string         `mapstructure:"action"`
	Resource ResourceConfig `mapstructure:"resource"`
	// Context maps context keys to value specs (see the package README):
	// {var}, header:Name, query:name, claim:name or a literal, with an
	// optional |number or |bool.
	Context map[string]string `mapstructure:"context"`
}

// ResourceConfig says which resource a route's requests are about.
type ResourceConfig struct {
	Type string `mapstructure:"type"`
	// ID is a value spec, usually a path variable ("{id}") or a literal
	// (a fixed id).
	ID string `mapstructure:"id"`
	// Properties map resource property names to value specs.
	Properties map[string]string `mapstructure:"properties"`
}

// SubjectConfig says how the subject of every evaluation is found: from a
// verified JWT (JWT.JWKSFile or JWT.JWKSURL set) or from a header that the
// proxy sets after authenticating the user itself (Header set). Exactly
// one of the two.
type SubjectConfig struct {
	// Type is the subject type sent to the PDP. Default "user".
	Type string `mapstructure:"type"`
	// Header is a trusted header carrying the subject id, for example
	// X-User-Id. Only safe when the proxy overwrites it on every request.
	Header string `mapstructure:"header"`
	// OnBehalfOfHeader optionally names a header carrying the id of the
	// person the subject acts for (context.on_behalf_of); the PDP checks
	// the delegation. A token's on_behalf_of_claim takes precedence.
	OnBehalfOfHeader string `mapstructure:"on_behalf_of_header"`
	// OnBehalfOfType is the type put in context.on_behalf_of when the
	// claim or header holds a bare id. Default "user".
	OnBehalfOfType string `mapstructure:"on_behalf_of_type"`
	// Realm is the realm of the WWW-Authenticate challenge. Default "pdp".
	Realm string    `mapstructure:"realm"`
	JWT   JWTConfig `mapstructure:"jwt"`
}

// JWTConfig configures bearer-token verification.
type JWTConfig struct {
	// JWKSFile is a local JWKS file; JWKSURL an https URL. One of them.
	JWKSFile string `mapstructure:"jwks_file"`
	JWKSURL  string `mapstructure:"jwks_url"`
	// Issuer must equal the iss claim. Required.
	Issuer string `mapstructure:"issuer"`
	// Audience: the aud claim must contain one of them. Required.
	Audience []string `mapstructure:"audience"`
	// Algorithms accepted in the token header; default DefaultAlgorithms.
	Algorithms []string `mapstructure:"algorithms"`
	// Leeway for exp, nbf and iat. Default 30s, at most 5m.
	Leeway time.Duration `mapstructure:"leeway"`
	// SubjectClaim holds the subject id. Default "sub".
	SubjectClaim string `mapstructure:"subject_claim"`
	// OnBehalfOfClaim optionally names a claim (for example "act_for")
	// holding the person the subject acts for: an id string, or an object
	// {"type":…,"id":…}. It becomes context.on_behalf_of.
	OnBehalfOfClaim string `mapstructure:"on_behalf_of_claim"`
	// RefreshInterval is how old the cached keys may get before the next
	// verification reloads them (default 1h); MinRefreshInterval the least
	// time between reloads caused by an unknown key id (default 30s).
	RefreshInterval    time.Duration `mapstructure:"refresh_interval"`
	MinRefreshInterval time.Duration `mapstructure:"min_refresh_interval"`
}

// enabled reports whether JWT verification is configured.
func (j JWTConfig) enabled() bool { return j.JWKSFile != "" || j.JWKSURL != "" }

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Unmatched == "" {
		c.Unmatched = UnmatchedDeny
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.NginxPath == "" {
		c.NginxPath = DefaultNginxPath
	}
	if c.EnvoyPrefix == "" {
		c.EnvoyPrefix = DefaultEnvoyPrefix
	}
	c.Subject = c.Subject.withDefaults()
	return c
}

func (s SubjectConfig) withDefaults() SubjectConfig {
	if s.Type == "" {
		s.Type = DefaultSubjectType
	}
	if s.OnBehalfOfType == "" {
		s.OnBehalfOfType = DefaultSubjectType
	}
	if s.Realm == "" {
		s.Realm = DefaultRealm
	}
	j := &s.JWT
	if len(j.Algorithms) == 0 {
		j.Algorithms = DefaultAlgorithms
	}
	if j.Leeway == 0 {
		j.Leeway = DefaultLeeway
	}
	if j.SubjectClaim == "" {
		j.SubjectClaim = DefaultSubjectClaim
	}
	if j.RefreshInterval == 0 {
		j.RefreshInterval = DefaultRefreshInterval
	}
	if j.MinRefreshInterval == 0 {
		j.MinRefreshInterval = DefaultMinRefreshInterval
	}
	return s
}

// Validate reports the first problem of c (after defaults), wrapping one of
// the sentinel errors and naming the route or field.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.Unmatched != UnmatchedDeny && c.Unmatched != UnmatchedAllow {
		return fmt.Errorf("%w: unmatched %q must be %q or %q", ErrConfig, c.Unmatched, UnmatchedDeny, UnmatchedAllow)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%w: timeout %v must not be negative", ErrConfig, c.Timeout)
	}
	for name, p := range map[string]string{"nginx_path": c.NginxPath, "envoy_prefix": c.EnvoyPrefix} {
		if !strings.HasPrefix(p, "/") || (len(p) > 1 && strings.HasSuffix(p, "/")) || strings.ContainsAny(p, "?#") {
			return fmt.Errorf("%w: %s %q must start with '/' and not end with '/'", ErrConfig, name, p)
		}
	}
	if c.NginxPath == c.EnvoyPrefix || strings.HasPrefix(c.NginxPath, c.EnvoyPrefix+"/") {
		return fmt.Errorf("%w: nginx_path %q must not be under envoy_prefix %q", ErrConfig, c.NginxPath, c.EnvoyPrefix)
	}
	if c.SubjectHeader != "" && !validHeaderName(c.SubjectHeader) {
		return fmt.Errorf("%w: subject_header %q is not a valid header name", ErrConfig, c.SubjectHeader)
	}
	if c.ActingForHeader != "" && !validHeaderName(c.ActingForHeader) {
		return fmt.Errorf("%w: acting_for_header %q is not a valid header name", ErrConfig, c.ActingForHeader)
	}
	if err := c.Subject.validate(); err != nil {
		return err
	}
	if len(c.Routes) == 0 {
		return fmt.Errorf("%w: no routes: every request would get the unmatched answer", ErrConfig)
	}
	_, err := compileRoutes(c.Routes)
	return err
}

func (s SubjectConfig) validate() error {
	s = s.withDefaults()
	switch {
	case s.JWT.enabled() && s.Header != "":
		return fmt.Errorf("%w: set either jwt (jwks_file or jwks_url) or header, not both", ErrSubject)
	case !s.JWT.enabled() && s.Header == "":
		return fmt.Errorf("%w: set jwt.jwks_file, jwt.jwks_url or header", ErrSubject)
	case s.Header != "" && !validHeaderName(s.Header):
		return fmt.Errorf("%w: header %q is not a valid header name", ErrSubject, s.Header)
	case s.OnBehalfOfHeader != "" && !validHeaderName(s.OnBehalfOfHeader):
		return fmt.Errorf("%w: on_behalf_of_header %q is not a valid header name", ErrSubject, s.OnBehalfOfHeader)
	case strings.ContainsAny(s.Realm, "\"\\\r\n"):
		return fmt.Errorf("%w: realm %q must not contain quotes, backslashes or line breaks", ErrSubject, s.Realm)
	}
	if s.JWT.enabled() {
		return s.JWT.validate()
	}
	return nil
}

func (j JWTConfig) validate() error {
	if err := j.verifier().Validate(); err != nil {
		// one set of rules with the PDP's actor tokens; the gateway's
		// sentinel, the same message
		return fmt.Errorf("%w%s", ErrJWT, strings.TrimPrefix(err.Error(), jwtverify.ErrConfig.Error()))
	}
	return nil
}

// verifier is the verifier's configuration of j.
func (j JWTConfig) verifier() jwtverify.Config {
	return jwtverify.Config{
		JWKSFile: j.JWKSFile, JWKSURL: j.JWKSURL, Issuer: j.Issuer, Audience: j.Audience,
		Algorithms: j.Algorithms, Leeway: j.Leeway,
		RefreshInterval: j.RefreshInterval, MinRefreshInterval: j.MinRefreshInterval,
	}
}

// reservedContext are context keys a route may not set: the subject
// config owns on_behalf_of, and the engine owns its own keys.
var reservedContext = map[string]string{
	pdp.ContextOnBehalfOf:       "it comes from the subject config (on_behalf_of_claim or on_behalf_of_header)",
	pdp.ContextActionProperties: "the engine sets it",
	pdp.ContextNow:              "the engine sets it",
	pdp.ContextDelegation:       "the engine sets it",
	pdp.ContextOnBehalfOfRel:    "the engine sets it",
	pdp.ContextRel:              "the engine sets it",
	pdp.ContextConsent:          "the engine sets it",
}
