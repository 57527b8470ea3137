package relations

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Engines: where the relationship facts live.
const (
	// EngineMemory runs SpiceDB in-process on its memory datastore. Facts are
	// lost when the process ends; meant for development, tests and demos.
	EngineMemory = "memory"
	// EnginePostgres runs SpiceDB in-process on a PostgreSQL datastore
	// (migrated at Open). Watch, and so the fact cache, needs the PostgreSQL
	// server setting track_commit_timestamp=on.
	EnginePostgres = "postgres"
	// EngineRemote talks to a SpiceDB service over gRPC (TLS and a
	// preshared key).
	EngineRemote = "remote"
)

// Defaults applied by Open (and WithDefaults) to zero Config fields.
const (
	DefaultEngine               = EngineMemory
	DefaultGCWindow             = 24 * time.Hour
	DefaultRevisionQuantization = 5 * time.Second
	DefaultCallTimeout          = 5 * time.Second
	DefaultCacheSize            = 100_000
	DefaultCacheMaxAge          = 30 * time.Second
	DefaultImportBatch          = 1_000
)

// Sentinel errors of Config.Validate.
var (
	ErrEngine       = errors.New(`engine must be "memory", "postgres" or "remote"`)
	ErrPostgresURI  = errors.New(`engine "postgres" needs a postgres:// or postgresql:// URI`)
	ErrEndpoint     = errors.New(`engine "remote" needs an endpoint host:port`)
	ErrPresharedKey = errors.New(`engine "remote" needs a preshared key`)
	ErrTLS          = errors.New("a CA file and Insecure exclude each other")
	ErrListen       = errors.New("listen address, certificate and key: only with an embedded engine; certificate and key together")
	ErrDuration     = errors.New("durations must not be negative")
	ErrCacheAge     = errors.New("cache max age must be shorter than the GC window")
)

// Config says which SpiceDB holds the facts and how the Store uses it. The
// zero value is valid: embedded SpiceDB on the memory datastore with a fact
// cache.
type Config struct {
	// Engine is "memory" (default), "postgres" or "remote".
	Engine string

	// PostgresURI is a pgx/libpq URI for EnginePostgres, for example
	// postgres://pdp:pdp@127.0.0.1:5432/pdp?sslmode=disable. The schema of
	// the SpiceDB tables is migrated to head at Open.
	PostgresURI string

	// Endpoint is the host:port of the SpiceDB gRPC API for EngineRemote.
	Endpoint string
	// PresharedKey is the bearer token SpiceDB expects. Required for
	// EngineRemote; for an embedded engine a random key is generated when
	// empty (set it to let other processes reach the embedded server
	// through Listen).
	PresharedKey string
	// CAFile is a PEM file of certificate authorities trusted for the remote
	// endpoint; empty means the system roots.
	CAFile string
	// Insecure connects to the remote endpoint without TLS (plaintext, the
	// key is sent in clear): only for loopback and tests.
	Insecure bool

	// Listen, for an embedded engine, serves the SpiceDB gRPC API on this
	// TCP address instead of an in-memory connection (for example
	// 127.0.0.1:50051), so that other processes (the zed CLI, another
	// replica, tests of EngineRemote) can reach it. With ListenCertFile and
	// ListenKeyFile it serves TLS, otherwise plaintext.
	Listen                        string
	ListenCertFile, ListenKeyFile string

	// GCWindow is how long old revisions stay readable (exact snapshots,
	// Watch cursors). Default 24h. Embedded engines only; a remote SpiceDB
	// has its own.
	GCWindow time.Duration
	// RevisionQuantization is SpiceDB's revision quantization interval.
	// Default 5s. Embedded engines only. The Store never reads with
	// minimize_latency, so this only affects SpiceDB's caching.
	RevisionQuantization time.Duration

	// OnChange, when set, is called by the change stream (Watch, which
	// runs while the fact cache is on) for every change of SpiceDB that is
	// not the Store's own: another replica's write, `pdp relations import`,
	// an external writer (and, conservatively, for an own write whose
	// revision the stream reports otherwise than the write did). It must
	// not block (the server coalesces it into one publish on the sidecars'
	// change feed).
	OnChange func()

	// CallTimeout bounds every SpiceDB call whose context has no deadline.
	// Default 5s. A deadline in the context always wins.
	CallTimeout time.Duration

	// CacheSize is the number of check results the fact cache keeps
	// (default 100,000); negative turns the cache off.
	CacheSize int
	// CacheMaxAge is how long the cache reuses one snapshot of the facts
	// when nothing changes (default 30s). It bounds how long a relationship
	// that expires by its expiration time (rather than a delete) can still
	// be served from the cache.
	CacheMaxAge time.Duration
}

// WithDefaults returns the configuration with defaults in its zero fields.
func (c Config) WithDefaults() Config {
	if c.Engine == "" {
		c.Engine = DefaultEngine
	}
	if c.GCWindow == 0 {
		c.GCWindow = DefaultGCWindow
	}
	if c.RevisionQuantization == 0 {
		c.RevisionQuantization = DefaultRevisionQuantization
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.CacheMaxAge == 0 {
		c.CacheMaxAge = DefaultCacheMaxAge
	}
	return c
}

// Validate reports the first problem of a configuration (after defaults),
// wrapping one of the sentinel errors above.
func (c Config) Validate() error {
	c = c.WithDefaults()
	embedded := c.Engine == EngineMemory || c.Engine == EnginePostgres
	switch c.Engine {
	case EngineMemory:
	case EnginePostgres:
		u, err := url.Parse(c.PostgresURI)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return ErrPostgresURI
		}
	case EngineRemote:
		if c.Endpoint == "" || strings.Contains(c.Endpoint, "://") {
			return fmt.Errorf("%w (got %q)", ErrEndpoint, c.Endpoint)
		}
		if c.PresharedKey == "" {
			return ErrPresharedKey
		}
		if c.CAFile != "" && c.Insecure {
			return ErrTLS
		}
	default:
		return fmt.Errorf("%w (got %q)", ErrEngine, c.Engine)
	}
	if (c.Listen != "" || c.ListenCertFile != "" || c.ListenKeyFile != "") && !embedded {
		return ErrListen
	}
	if (c.ListenCertFile == "") != (c.ListenKeyFile == "") || (c.ListenCertFile != "" && c.Listen == "") {
		return ErrListen
	}
	if c.GCWindow < 0 || c.RevisionQuantization < 0 || c.CallTimeout < 0 || c.CacheMaxAge < 0 {
		return ErrDuration
	}
	if c.CacheSize > 0 && c.CacheMaxAge >= c.GCWindow {
		return ErrCacheAge
	}
	return nil
}

// embedded reports whether Open starts SpiceDB in this process.
func (c Config) embedded() bool { return c.Engine != EngineRemote }
