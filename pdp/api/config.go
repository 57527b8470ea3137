package api

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultBodyLimit       int64 = 1 << 20 // 1 MiB
	DefaultReadTimeout           = 10 * time.Second
	DefaultWriteTimeout          = 10 * time.Second
	DefaultIdleTimeout           = 60 * time.Second
	DefaultShutdownTimeout       = 10 * time.Second
	// DefaultMaxBatch bounds the items of one Access Evaluations request
	// and the results of one search page.
	DefaultMaxBatch = 1000
)

// Sentinel errors of Config.Validate and New.
var (
	ErrBasePath  = errors.New("base path must be empty or start with '/', must not end with '/', and must not contain '?', '#', ':' or '*'")
	ErrPublicURL = errors.New("public URL must be an absolute http or https URL without query or fragment")
	ErrBodyLimit = errors.New("body limit must not be negative")
	ErrMaxBatch  = errors.New("max batch must not be negative")
	ErrTimeout   = errors.New("timeouts must not be negative")
	ErrAPIKey    = errors.New("API keys must map a hex SHA-256 digest (64 hex digits) to a non-empty application id")
	ErrDeps      = errors.New("a Decider and a PolicyStatus are required")
)

// Config is the HTTP server's configuration. The zero value is valid: it
// serves at the root, with authentication off and the defaults above.
type Config struct {
	// BasePath prefixes the AuthZEN endpoints (…/access/v1/…), so that the
	// PDP identifier may carry a path, as interop base URLs do (for example
	// "/stores/abc"). The well-known metadata, /v1/policies and the
	// operational endpoints (/healthz, /readyz, /metrics) are always at the
	// root.
	BasePath string
	// PublicURL is the externally visible base URL (scheme and host, and a
	// path if a proxy adds one); the PDP identifier announced in the metadata
	// (policy_decision_point) is PublicURL+BasePath. If empty, Serve derives
	// http://host:port from the listener's address (localhost for an
	// unspecified address); a Handler used without Serve falls back to the
	// request's Host. Set it behind a proxy: the identifier must equal what
	// PEPs use. AuthZEN wants https; http is accepted for local use.
	PublicURL string
	// BodyLimit is the largest accepted request body in bytes; larger
	// bodies get 413. Default 1 MiB.
	BodyLimit int64
	// Timeouts of the http.Server run by Serve, and the grace period for
	// in-flight requests on shutdown. Defaults 10s, 10s, 60s and 10s.
	ReadTimeout, WriteTimeout, IdleTimeout, ShutdownTimeout time.Duration
	// APIKeys maps the hex SHA-256 digest (either case) of each accepted
	// bearer token to the id of the application that holds it. Empty means authentication
	// is off and every request's Application is "".
	APIKeys map[string]string
	// MaxBatch is the most items one Access Evaluations request may hold
	// (more: 413, nothing decided) and the most results one search page
	// may ask for (page.limit above it: 400); a search without a page
	// limit gets pages of MaxBatch results. Default 1,000.
	MaxBatch int
	// CompactBatch leaves the context out of batch items, so that each item
	// is exactly {"decision":true|false}.
	CompactBatch bool
	// EnableNoop adds POST {BasePath}/access/v1/noop: the full request path
	// without a decision, as a throughput baseline.
	EnableNoop bool
	// DelegationAdmins are the applications allowed to use the delegation
	// admin API (when authentication is on). Which of them may record
	// register-sourced delegations is the delegation Service's
	// configuration (delegation.Config.RegisterApplications).
	DelegationAdmins map[string]bool
	// DelegationReaders may read delegation records (GET /v1/delegations…)
	// without administering them. Which records an application sees, an
	// administrator's or a reader's, is the delegation Service's rule
	// (delegation.Reader; readers see every record).
	DelegationReaders map[string]bool
	// ConsentAdmins are the applications that read every consent of a
	// data subject (state, history, receipts); any other application reads
	// only what it is party to (consent.Reader). With authentication off,
	// every caller reads everything.
	ConsentAdmins map[string]bool
	// SignalAdmins are the applications that read subjects' risk signals
	// at SignalsPath.
	SignalAdmins map[string]bool
	// AuditorKeys maps the hex SHA-256 digest of each auditor's bearer
	// token to the auditor's id: only these read the trail at /v1/audit/….
	// Application keys never do. With authentication off and no auditor
	// keys, loopback callers are the auditor "local".
	AuditorKeys map[string]string
}

// Validate reports the first invalid field, wrapping one of the sentinel
// errors. Zero values are valid (they mean the defaults).
func (c Config) Validate() error {
	if c.BasePath != "" && (!strings.HasPrefix(c.BasePath, "/") || strings.HasSuffix(c.BasePath, "/") ||
		strings.ContainsAny(c.BasePath, "?#:*")) {
		return fmt.Errorf("base path %q: %w", c.BasePath, ErrBasePath)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil {
			return fmt.Errorf("public URL %q: %w: %w", c.PublicURL, ErrPublicURL, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" ||
			u.ForceQuery || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("public URL %q: %w", c.PublicURL, ErrPublicURL)
		}
	}
	if c.BodyLimit < 0 {
		return fmt.Errorf("body limit %d: %w", c.BodyLimit, ErrBodyLimit)
	}
	if c.MaxBatch < 0 {
		return fmt.Errorf("max batch %d: %w", c.MaxBatch, ErrMaxBatch)
	}
	for name, d := range map[string]time.Duration{
		"read": c.ReadTimeout, "write": c.WriteTimeout, "idle": c.IdleTimeout, "shutdown": c.ShutdownTimeout,
	} {
		if d < 0 {
			return fmt.Errorf("%s timeout %v: %w", name, d, ErrTimeout)
		}
	}
	for digest, app := range c.APIKeys {
		if b, err := hex.DecodeString(digest); err != nil || len(b) != 32 || app == "" {
			// The digest is not secret, but keep it out of messages anyway.
			return fmt.Errorf("API key for application %q: %w", app, ErrAPIKey)
		}
	}
	for digest, who := range c.AuditorKeys {
		if b, err := hex.DecodeString(digest); err != nil || len(b) != 32 || who == "" {
			return fmt.Errorf("auditor key for %q: %w", who, ErrAPIKey)
		}
		if _, clash := c.APIKeys[digest]; clash {
			return fmt.Errorf("auditor key for %q is also an application's API key: %w", who, ErrAPIKey)
		}
	}
	return nil
}

// withDefaults fills zero fields with the defaults and normalises PublicURL.
func (c Config) withDefaults() Config {
	if c.BodyLimit == 0 {
		c.BodyLimit = DefaultBodyLimit
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	return c
}
