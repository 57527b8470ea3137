// Package sidecar is the PDP that runs beside each application: it speaks
// the AuthZEN API on localhost (and the nginx and Envoy gateway adapters),
// forwards what it cannot answer to the central PDP with its application's
// credentials, and answers repeated questions from a cache that never
// outlives a change.
//
// Cache correctness. A cached answer is served only while
//   - the central PDP's change sequence and epoch are the ones the answer
//     was decided under (every policy version, delegation and consent
//     change, and a velocity block or failed step-up hold that begins or
//     ends, bumps the sequence; a restart changes the epoch), and
//   - the sidecar's lease is valid: it heard from the central PDP less
//     than a lease ago (measured from when it sent the poll that was
//     answered), and
//   - the entry is younger than cache_ttl (time-bound facts: windows,
//     expiries).
//
// The central PDP answers a revoke or a withdrawal only once every sidecar
// that may serve from its cache has acknowledged the change (its next poll)
// or its lease has run out, so no sidecar serves an allow decided before
// the change once the change call has returned. That holds in every mode:
// degraded answers too are given only while the lease holds, and a lease
// renewed after it ran out clears the cache. A request carrying
// PDP-Consistency-Token is never answered from the cache, nor is a
// step-up outcome reported (context.step_up): each must reach the PDP.
//
// On a TCP listener the AuthZEN endpoints answer only callers presenting
// the application's API key or the sidecar's local_token (anyone on the
// machine can reach a loopback port); on a Unix socket the socket's file
// permissions decide. The gateway adapters and health need no credential.
//
// Every answer the sidecar gives itself (cache hits, degraded answers,
// fail-closed denies) is a decision with its own id, spooled durably on
// local disk and shipped in order to the central trail, exactly once; the
// spool deletes its segments once they are shipped.
// Answers the central PDP gave are already in its trail.
package sidecar

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/ciampdp/pdp/sidecar/gateway"
)

// Spool modes.
const (
	SpoolSync  = "sync"  // a locally decided answer is given once its record is on disk
	SpoolAsync = "async" // records go through a bounded buffer to the spool
)

// Bounds of Config.SpoolSegmentBytes.
const (
	DefaultSpoolSegmentBytes = 64 << 20
	MinSpoolSegmentBytes     = 64 << 10
	MaxSpoolSegmentBytes     = 4 << 30
)

// Config is the sidecar's configuration (mapstructure tags, for viper).
type Config struct {
	// Listen is a loopback address (127.0.0.1:8181) or unix:/path/to.sock.
	Listen string `mapstructure:"listen"`
	// CentralURL is the central PDP's base URL: one (a load-balanced
	// service), or a comma-separated list of replicas. The sidecar follows
	// one replica at a time (change feed, evaluations, spool shipping) and
	// moves to the next when it does not answer; a move changes the epoch,
	// which clears the cache.
	CentralURL string `mapstructure:"central_url"`
	// APIKey is the application's key at the central PDP: the application
	// id of every decision is the one the central PDP maps it to.
	APIKey string `mapstructure:"api_key"`
	// LocalToken is a secret the application may present to the sidecar
	// instead of APIKey (Authorization: Bearer <token>). On a TCP listener
	// the AuthZEN endpoints answer only callers presenting one of the two
	// (with neither set, as with the central PDP's authentication off,
	// anyone on the machine); on a Unix socket its file permissions decide
	// who may connect, and no credential is asked.
	LocalToken string `mapstructure:"local_token"`
	// ID names this sidecar at the central PDP (change feed, trail
	// ingest); default host-pid-random. Keep it stable across restarts for
	// the spool's exactly-once shipping.
	ID string `mapstructure:"id"`
	// Timeout bounds each call to the central PDP.
	Timeout time.Duration `mapstructure:"timeout"`
	// ShutdownTimeout bounds the whole stop on SIGINT or SIGTERM: requests
	// in flight get three quarters of it (at least), closing the spool the
	// rest; what still hangs then is abandoned.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// CacheSize is the number of answers kept; 0 disables the cache.
	CacheSize int `mapstructure:"cache_size"`
	// CacheTTL bounds an answer's age whatever the change feed says.
	CacheTTL time.Duration `mapstructure:"cache_ttl"`
	// PollWait is how long the central PDP may hold a change-feed poll;
	// keep it well under the lease (default lease 2s) so that each renewal
	// lands before the lease it renews runs out.
	PollWait time.Duration `mapstructure:"poll_wait"`
	// SpoolDir holds the spool of locally decided answers and the shipping
	// position.
	SpoolDir  string `mapstructure:"spool_dir"`
	SpoolMode string `mapstructure:"spool_mode"`
	// SpoolSegmentBytes is the size of records at which the spool starts
	// a new segment. A segment is deleted once every record in it was
	// shipped, so the spool takes about what is not shipped yet plus one
	// segment on disk.
	SpoolSegmentBytes int64 `mapstructure:"spool_segment_bytes"`
	// ShipInterval is how often the spool is shipped: a partial batch at
	// most once per interval, a full one (1,000 answers) at once.
	ShipInterval time.Duration `mapstructure:"ship_interval"`
	Degraded     Degraded      `mapstructure:"degraded"`
	Breaker      Breaker       `mapstructure:"breaker"`
	// PprofAddr, when set, serves Go's runtime profiles (net/http/pprof)
	// on a second listener, loopback only: for measuring, never public.
	PprofAddr string `mapstructure:"pprof_addr"`
	// Gateway, when it has routes, serves the nginx auth_request and Envoy
	// ext_authz adapters through the same cache.
	Gateway gateway.Config `mapstructure:"gateway"`
}

// Degraded lists what may be answered from a stale cache entry while the
// central PDP does not answer evaluations: low-risk actions, up to
// MaxStaleness old, and only while the change feed's lease holds (nothing
// changed since the entry was decided). Every such answer is marked
// degraded. Once the lease has run out everything fails closed. Empty:
// fail closed for everything.
type Degraded struct {
	Actions      []string      `mapstructure:"actions"`
	MaxStaleness time.Duration `mapstructure:"max_staleness"`
}

// Breaker stops calling an unreachable central PDP for Cooldown after
// Failures consecutive failures (then lets one call through to probe).
type Breaker struct {
	Failures int           `mapstructure:"failures"`
	Cooldown time.Duration `mapstructure:"cooldown"`
}

// Centrals are the central PDP's base URLs: the entries of CentralURL,
// without spaces and trailing slashes.
func (c Config) Centrals() []string {
	var out []string
	for _, u := range strings.Split(c.CentralURL, ",") {
		if u = strings.TrimSuffix(strings.TrimSpace(u), "/"); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// DefaultConfig is the configuration's defaults.
func DefaultConfig() Config {
	return Config{
		Listen: "127.0.0.1:8181", CentralURL: "http://127.0.0.1:8080", Timeout: 2 * time.Second, ShutdownTimeout: 5 * time.Second,
		CacheSize: 100000, CacheTTL: 30 * time.Second, PollWait: 500 * time.Millisecond,
		SpoolDir: "pdp-data/sidecar", SpoolMode: SpoolAsync, SpoolSegmentBytes: DefaultSpoolSegmentBytes, ShipInterval: 200 * time.Millisecond,
		Degraded: Degraded{MaxStaleness: 5 * time.Minute},
		Breaker:  Breaker{Failures: 5, Cooldown: 2 * time.Second},
	}
}

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("sidecar: bad configuration")

// Validate reports the first unusable setting.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	for _, central := range c.Centrals() {
		u, err := url.Parse(central)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(central, "#") || strings.ContainsAny(central, " \t") {
			return bad("central_url %q must be an http or https base URL (no query, fragment or spaces), or a comma-separated list of them", central)
		}
	}
	switch {
	case len(c.Centrals()) == 0:
		return bad("central_url must name the central PDP")
	case c.Listen == "":
		return bad("listen must be host:port on loopback or unix:/path")
	case strings.HasPrefix(c.Listen, "unix:") && len(c.Listen) == len("unix:"):
		return bad("listen %q names no socket path", c.Listen)
	case c.Timeout <= 0 || c.PollWait <= 0 || c.ShipInterval <= 0 || c.ShutdownTimeout <= 0:
		return bad("timeout, poll_wait, ship_interval and shutdown_timeout must be positive")
	case c.CacheSize < 0 || c.CacheSize > 0 && c.CacheTTL <= 0:
		return bad("cache_size must not be negative, and cache_ttl must be positive with a cache")
	case c.SpoolDir == "":
		return bad("spool_dir must not be empty")
	case c.SpoolMode != SpoolSync && c.SpoolMode != SpoolAsync:
		return bad("spool_mode %q must be sync or async", c.SpoolMode)
	case c.SpoolSegmentBytes < MinSpoolSegmentBytes || c.SpoolSegmentBytes > MaxSpoolSegmentBytes:
		return bad("spool_segment_bytes %d must be between %d (64 KiB) and %d (4 GiB)", c.SpoolSegmentBytes, MinSpoolSegmentBytes, MaxSpoolSegmentBytes)
	case len(c.Degraded.Actions) > 0 && c.Degraded.MaxStaleness <= 0:
		return bad("degraded.max_staleness must be positive when degraded.actions are listed")
	case c.Breaker.Failures <= 0 || c.Breaker.Cooldown <= 0:
		return bad("breaker.failures and breaker.cooldown must be positive")
	case c.PprofAddr != "" && !loopbackHostPort(c.PprofAddr):
		return bad("pprof_addr %q: profiles are served on a loopback host:port only", c.PprofAddr)
	}
	return nil
}

// loopbackHostPort reports whether addr is host:port with a loopback IP or
// "localhost" as host.
func loopbackHostPort(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
