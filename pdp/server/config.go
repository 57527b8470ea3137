package server

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/ciampdp/pdp/pdp/actorproof"
	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/changefeed"
	"github.com/ciampdp/pdp/pdp/jwtverify"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/relations"
)

// Sentinel errors of the configuration's Validate methods.
var (
	ErrAddr            = errors.New("http.addr must be host:port")
	ErrChangeLease     = errors.New("http.change_lease must be positive and at most 1m")
	ErrInsecureAddr    = errors.New("no API keys are configured, so authentication is off and http.addr must be a loopback address (127.0.0.1, ::1 or localhost); configure auth.api_keys (see 'pdp hash-key') to listen elsewhere")
	ErrPolicyDir       = errors.New("policy.dir must not be empty")
	ErrReloadInterval  = errors.New("policy.reload_interval must not be negative")
	ErrGitSubdir       = errors.New("policy.git.subdir must be a relative path inside the repository")
	ErrAPIKeyApp       = errors.New("every API key needs an application id")
	ErrAPIKeyDigest    = errors.New("an API key's sha256 must be 64 hex digits (the output of 'pdp hash-key')")
	ErrAPIKeyDuplicate = errors.New("the same API key digest is listed twice")
	ErrLogLevel        = errors.New("log.level must be debug, info, warn or error")
	ErrLogFormat       = errors.New("log.format must be json or text")
)

// Config is the configuration of 'pdp serve'. Field tags are the keys of
// the YAML file; the environment variable of a key is PDP_ followed by the
// key in upper case with dots as underscores (http.addr: PDP_HTTP_ADDR).
type Config struct {
	HTTP        HTTPConfig        `mapstructure:"http"`
	Policy      PolicyConfig      `mapstructure:"policy"`
	Auth        AuthConfig        `mapstructure:"auth"`
	Relations   RelationsConfig   `mapstructure:"relations"`
	Delegations DelegationsConfig `mapstructure:"delegations"`
	Consent     ConsentConfig     `mapstructure:"consent"`
	Dormancy    DormancyConfig    `mapstructure:"dormancy"`
	Signals     SignalsConfig     `mapstructure:"signals"`
	Trail       TrailConfig       `mapstructure:"trail"`
	Console     ConsoleConfig     `mapstructure:"console"`
	Log         LogConfig         `mapstructure:"log"`
}

// DefaultConfig is the embedded default: loopback only, authentication off,
// the bundle in ./policies and ./schema, reloaded when it changes.
func DefaultConfig() Config {
	return Config{HTTP: DefaultHTTP(), Policy: DefaultPolicy(), Auth: DefaultAuth(), Relations: DefaultRelations(), Delegations: DefaultDelegations(), Consent: DefaultConsent(), Dormancy: DefaultDormancy(), Signals: DefaultSignals(), Trail: DefaultTrail(), Console: DefaultConsole(), Log: DefaultLog()}
}

// Validate checks every section, then what spans sections.
func (c Config) Validate() error {
	if err := c.HTTP.Validate(); err != nil {
		return err
	}
	if err := c.Policy.Validate(); err != nil {
		return err
	}
	if err := c.Auth.Validate(); err != nil {
		return err
	}
	if err := c.Delegations.Validate(); err != nil {
		return err
	}
	if err := c.Consent.Validate(); err != nil {
		return err
	}
	if err := c.Dormancy.Validate(); err != nil {
		return err
	}
	if err := c.Signals.Validate(); err != nil {
		return err
	}
	if err := c.Relations.Validate(); err != nil {
		return err
	}
	if err := c.Trail.Validate(); err != nil {
		return err
	}
	if err := c.Console.Validate(); err != nil {
		return err
	}
	if err := c.Log.Validate(); err != nil {
		return err
	}
	if err := c.Signals.Outgoing.checkReceiverApplications(c.Auth); err != nil {
		return err
	}
	if len(c.Auth.APIKeys) == 0 {
		host, _, _ := net.SplitHostPort(c.HTTP.Addr)
		if !isLoopbackHost(host) {
			return fmt.Errorf("http.addr %q: %w", c.HTTP.Addr, ErrInsecureAddr)
		}
	}
	return c.checkDemoKeys()
}

// isLoopbackHost reports whether host names the loopback interface only:
// a loopback IP or "localhost" (which RFC 6761 reserves for it). An empty
// host means every interface.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// HTTPConfig is the HTTP server: where it listens and how it answers.
type HTTPConfig struct {
	Addr            string        `mapstructure:"addr"`
	BasePath        string        `mapstructure:"base_path"`
	PublicURL       string        `mapstructure:"public_url"`
	BodyLimit       int64         `mapstructure:"body_limit"`
	MaxBatch        int           `mapstructure:"max_batch"`
	ReadTimeout     time.Duration `mapstructure:"read_timeout"`
	WriteTimeout    time.Duration `mapstructure:"write_timeout"`
	IdleTimeout     time.Duration `mapstructure:"idle_timeout"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	CompactBatch    bool          `mapstructure:"compact_batch"`
	NoopEndpoint    bool          `mapstructure:"noop_endpoint"`
	// PprofAddr, when set, serves Go's runtime profiles (net/http/pprof)
	// on a second listener, loopback only: for measuring, never public.
	PprofAddr string `mapstructure:"pprof_addr"`
	// ChangeLease is how long a sidecar may serve cached answers after the
	// send time of its last change-feed poll; a change waits at most this
	// long for a sidecar that does not acknowledge it.
	ChangeLease time.Duration `mapstructure:"change_lease"`
}

// DefaultHTTP listens on 127.0.0.1:8080 with the api package's defaults.
func DefaultHTTP() HTTPConfig {
	return HTTPConfig{
		Addr:            "127.0.0.1:8080",
		BodyLimit:       api.DefaultBodyLimit,
		MaxBatch:        api.DefaultMaxBatch,
		ReadTimeout:     api.DefaultReadTimeout,
		WriteTimeout:    api.DefaultWriteTimeout,
		IdleTimeout:     api.DefaultIdleTimeout,
		ShutdownTimeout: api.DefaultShutdownTimeout,
		ChangeLease:     changefeed.DefaultChangeLease,
	}
}

// Validate checks the address and lets the api package check the rest.
func (h HTTPConfig) Validate() error {
	if _, port, err := net.SplitHostPort(h.Addr); err != nil || port == "" {
		return fmt.Errorf("http.addr %q: %w", h.Addr, ErrAddr)
	}
	if h.PprofAddr != "" {
		host, port, err := net.SplitHostPort(h.PprofAddr)
		if err != nil || port == "" || !isLoopbackHost(host) {
			return fmt.Errorf("http.pprof_addr %q: profiles are served on a loopback address only: %w", h.PprofAddr, ErrAddr)
		}
	}
	if h.ChangeLease <= 0 || h.ChangeLease > time.Minute {
		return fmt.Errorf("%v: %w", h.ChangeLease, ErrChangeLease)
	}
	if err := h.API(nil).Validate(); err != nil {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

// ShutdownLimit bounds serve's whole shutdown (0: the api default).
func (h HTTPConfig) ShutdownLimit() time.Duration {
	if h.ShutdownTimeout <= 0 {
		return api.DefaultShutdownTimeout
	}
	return h.ShutdownTimeout
}

// API is the api package's view of the section, with the API keys.
func (h HTTPConfig) API(keys map[string]string) api.Config {
	return api.Config{
		BasePath:        h.BasePath,
		PublicURL:       h.PublicURL,
		BodyLimit:       h.BodyLimit,
		MaxBatch:        h.MaxBatch,
		ReadTimeout:     h.ReadTimeout,
		WriteTimeout:    h.WriteTimeout,
		IdleTimeout:     h.IdleTimeout,
		ShutdownTimeout: h.ShutdownTimeout,
		APIKeys:         keys,
		CompactBatch:    h.CompactBatch,
		EnableNoop:      h.NoopEndpoint,
	}
}

// PolicyConfig says where the policy bundle comes from: a folder, or a Git
// remote when Git.Remote is set (Dir is then ignored).
type PolicyConfig struct {
	// Dir is the bundle root: Dir/policies and Dir/schema when they exist
	// (policy.DirsFor), else Dir itself.
	Dir string `mapstructure:"dir"`
	// ReloadInterval is how often the folders are checked for changes; 0
	// turns hot reload off.
	ReloadInterval time.Duration `mapstructure:"reload_interval"`
	Git            GitConfig     `mapstructure:"git"`
}

// DefaultPolicy is the bundle in the working directory, checked every 2s.
func DefaultPolicy() PolicyConfig {
	return PolicyConfig{Dir: ".", ReloadInterval: 2 * time.Second, Git: DefaultGit()}
}

// Validate checks the folder or, when a remote is set, the Git section.
func (p PolicyConfig) Validate() error {
	if p.ReloadInterval < 0 {
		return fmt.Errorf("%v: %w", p.ReloadInterval, ErrReloadInterval)
	}
	if p.Git.Enabled() {
		return p.Git.Validate()
	}
	if p.Dir == "" {
		return ErrPolicyDir
	}
	return nil
}

// GitConfig follows a branch of a policy repository (see policy.GitConfig).
type GitConfig struct {
	Remote       string        `mapstructure:"remote"`
	Branch       string        `mapstructure:"branch"`
	Checkout     string        `mapstructure:"checkout"`
	Subdir       string        `mapstructure:"subdir"`
	PullInterval time.Duration `mapstructure:"pull_interval"`
	Username     string        `mapstructure:"username"`
	Password     string        `mapstructure:"password"`
}

// DefaultGit follows main, cloned into .data/policies-git, pulled every
// minute; it is off until Remote is set.
func DefaultGit() GitConfig {
	return GitConfig{Branch: "main", Checkout: filepath.Join(".data", "policies-git"), PullInterval: time.Minute}
}

// Enabled reports whether the bundle comes from Git.
func (g GitConfig) Enabled() bool { return g.Remote != "" }

// Validate checks the section (wrapping policy.ErrGitConfig or ErrGitSubdir).
func (g GitConfig) Validate() error {
	if g.Subdir != "" && !filepath.IsLocal(g.Subdir) {
		return fmt.Errorf("%q: %w", g.Subdir, ErrGitSubdir)
	}
	pg := g.Policy()
	if err := pg.Validate(); err != nil {
		return fmt.Errorf("policy.git: %w", err)
	}
	return nil
}

// Policy is the policy package's view of the section.
func (g GitConfig) Policy() *policy.GitConfig {
	return &policy.GitConfig{
		Remote: g.Remote, Branch: g.Branch, Checkout: g.Checkout, Subdir: g.Subdir,
		PullInterval: g.PullInterval, Username: g.Username, Password: g.Password,
	}
}

// AuthConfig lists the applications allowed to ask for decisions. With no
// keys, authentication is off (and the server listens on loopback only).
type AuthConfig struct {
	APIKeys []APIKey `mapstructure:"api_keys"`
	// AuditorKeys are the keys of auditors (the "application" field names
	// the auditor): only they read the trail at /v1/audit/…, and no
	// application key does.
	AuditorKeys []APIKey `mapstructure:"auditor_keys"`
	// ActorTokens, when set, makes every delegation and consent change
	// prove its actor with the actor's own token (header Actor-Token);
	// unset, applications are trusted to authenticate their users.
	ActorTokens ActorTokensConfig `mapstructure:"actor_tokens"`
}

// DefaultAuth is authentication off; actor tokens, once configured, are
// single use (see ActorTokensConfig).
func DefaultAuth() AuthConfig {
	return AuthConfig{ActorTokens: ActorTokensConfig{SingleUse: true, SingleUseCapacity: actorproof.DefaultMemoryCapacity}}
}

// ActorTokensConfig says whose end-user tokens prove the actor of an admin
// change: the identity provider's issuer, the PDP's audience, its keys (a
// JWKS file or an https URL, fetched with a timeout and cached) and the
// accepted algorithms; and what a token is bound to: the calling
// application's clients (Clients) and one change (SingleUse).
type ActorTokensConfig struct {
	Issuer     string        `mapstructure:"issuer"`
	Audience   []string      `mapstructure:"audience"`
	JWKSFile   string        `mapstructure:"jwks_file"`
	JWKSURL    string        `mapstructure:"jwks_url"`
	Algorithms []string      `mapstructure:"algorithms"`
	Leeway     time.Duration `mapstructure:"leeway"`
	// Clients maps each application (of auth.api_keys) to the OAuth
	// client ids its users' tokens are issued to (the token's azp, else
	// client_id). Set, a token proves an actor only for an application
	// listing its client, and an application not listed proves no one.
	Clients map[string][]string `mapstructure:"clients"`
	// SingleUse (default true) makes a token prove one change: its jti is
	// remembered until its exp plus the leeway (in the process, or in
	// PostgreSQL when the delegation or consent records are there), and
	// a token without jti proves nothing.
	SingleUse bool `mapstructure:"single_use"`
	// SingleUseCapacity bounds the jtis one process remembers (the file
	// deployment); when that many unexpired uses are remembered a change
	// is refused (503 actor_replay_unavailable).
	SingleUseCapacity int `mapstructure:"single_use_capacity"`
}

// Enabled reports whether any part of the section that turns actor proof
// on is set (then all of it must be valid). SingleUse and
// SingleUseCapacity have defaults and turn nothing on.
func (a ActorTokensConfig) Enabled() bool {
	return a.Issuer != "" || len(a.Audience) > 0 || a.JWKSFile != "" || a.JWKSURL != "" || len(a.Algorithms) > 0 || a.Leeway != 0 ||
		len(a.Clients) > 0
}

// Verification is the jwtverify view of the section.
func (a ActorTokensConfig) Verification() jwtverify.Config {
	return jwtverify.Config{JWKSFile: a.JWKSFile, JWKSURL: a.JWKSURL, Issuer: a.Issuer, Audience: a.Audience,
		Algorithms: a.Algorithms, Leeway: a.Leeway}
}

// Validate checks the section when it is set.
func (a ActorTokensConfig) Validate() error {
	if !a.Enabled() {
		return nil
	}
	if err := a.Verification().Validate(); err != nil {
		return fmt.Errorf("auth.actor_tokens: %w", err)
	}
	if a.SingleUse && a.SingleUseCapacity <= 0 {
		return fmt.Errorf("auth.actor_tokens.single_use_capacity %d: %w: it must be positive", a.SingleUseCapacity, ErrActorTokens)
	}
	return nil
}

// APIKey is one application's key, by the hex SHA-256 of the key (the key
// itself never appears in the configuration).
type APIKey struct {
	Application string `mapstructure:"application"`
	SHA256      string `mapstructure:"sha256"`
}

// Validate checks every key.
func (a AuthConfig) Validate() error {
	seen := make(map[string]bool, len(a.APIKeys))
	for i, k := range a.APIKeys {
		if k.Application == "" {
			return fmt.Errorf("auth.api_keys[%d]: %w", i, ErrAPIKeyApp)
		}
		if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("auth.api_keys[%d] (application %q): %w", i, k.Application, ErrAPIKeyDigest)
		}
		d := strings.ToLower(k.SHA256)
		if seen[d] {
			return fmt.Errorf("auth.api_keys[%d] (application %q): %w", i, k.Application, ErrAPIKeyDuplicate)
		}
		seen[d] = true
	}
	for i, k := range a.AuditorKeys {
		if k.Application == "" {
			return fmt.Errorf("auth.auditor_keys[%d]: %w", i, ErrAPIKeyApp)
		}
		if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("auth.auditor_keys[%d] (auditor %q): %w", i, k.Application, ErrAPIKeyDigest)
		}
		d := strings.ToLower(k.SHA256)
		if seen[d] {
			return fmt.Errorf("auth.auditor_keys[%d] (auditor %q): %w", i, k.Application, ErrAPIKeyDuplicate)
		}
		seen[d] = true
	}
	if err := a.ActorTokens.Validate(); err != nil {
		return err
	}
	_, err := a.ActorTokenClients()
	return err
}

// Auditors maps each auditor key digest (lower case) to its auditor.
func (a AuthConfig) Auditors() map[string]string {
	m := make(map[string]string, len(a.AuditorKeys))
	for _, k := range a.AuditorKeys {
		m[strings.ToLower(k.SHA256)] = k.Application
	}
	return m
}

// Keys maps each digest (lower case) to its application, as api.Config
// wants them; nil when authentication is off.
func (a AuthConfig) Keys() map[string]string {
	if len(a.APIKeys) == 0 {
		return nil
	}
	m := make(map[string]string, len(a.APIKeys))
	for _, k := range a.APIKeys {
		m[strings.ToLower(k.SHA256)] = k.Application
	}
	return m
}

// ParseAPIKeys reads the environment form of auth.api_keys:
// "application=sha256" pairs separated by commas or white space.
func ParseAPIKeys(s string) ([]APIKey, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' })
	keys := make([]APIKey, 0, len(fields))
	for _, f := range fields {
		app, digest, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("auth.api_keys: %q is not application=sha256", f)
		}
		keys = append(keys, APIKey{Application: strings.TrimSpace(app), SHA256: strings.TrimSpace(digest)})
	}
	return keys, nil
}

// LogConfig is the process log.
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// DefaultLog is JSON at info.
func DefaultLog() LogConfig { return LogConfig{Level: "info", Format: "json"} }

// Validate checks level and format.
func (l LogConfig) Validate() error {
	if _, err := l.SlogLevel(); err != nil {
		return err
	}
	if l.Format != "json" && l.Format != "text" {
		return fmt.Errorf("%q: %w", l.Format, ErrLogFormat)
	}
	return nil
}

// SlogLevel is the configured level as a slog.Level.
func (l LogConfig) SlogLevel() (slog.Level, error) {
	var lv slog.Level
	switch strings.ToLower(l.Level) {
	case "debug", "info", "warn", "warning", "error":
	default:
		return lv, fmt.Errorf("%q: %w", l.Level, ErrLogLevel)
	}
	if strings.EqualFold(l.Level, "warning") {
		return slog.LevelWarn, nil
	}
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		return lv, fmt.Errorf("%q: %w", l.Level, ErrLogLevel)
	}
	return lv, nil
}

// RelationsConfig selects the relationship store, SpiceDB: embedded in the
// process on its memory datastore (the default), embedded on PostgreSQL, or
// a remote SpiceDB cluster; "none" runs without one (actions that declare
// relationship facts are then denied with facts_unavailable).
type RelationsConfig struct {
	Engine       string        `mapstructure:"engine"`
	PostgresURL  string        `mapstructure:"postgres_url"`
	Endpoint     string        `mapstructure:"endpoint"`
	PresharedKey string        `mapstructure:"preshared_key"`
	CAFile       string        `mapstructure:"ca_file"`
	Insecure     bool          `mapstructure:"insecure"`
	CallTimeout  time.Duration `mapstructure:"call_timeout"`
	CacheSize    int           `mapstructure:"cache_size"`
	CacheMaxAge  time.Duration `mapstructure:"cache_max_age"`
	// Bootstrap is a file of relationships (one per line, SpiceDB's text
	// form) written at start: seed data for the embedded store.
	Bootstrap string `mapstructure:"bootstrap"`
}

// EngineNone turns the relationship store off.
const EngineNone = "none"

// DefaultRelations is embedded SpiceDB on its memory datastore.
func DefaultRelations() RelationsConfig {
	return RelationsConfig{
		Engine:      relations.DefaultEngine,
		CallTimeout: relations.DefaultCallTimeout,
		CacheSize:   relations.DefaultCacheSize,
		CacheMaxAge: relations.DefaultCacheMaxAge,
	}
}

// Validate lets the relations package check the section.
func (r RelationsConfig) Validate() error {
	if r.Engine == EngineNone {
		return nil
	}
	if err := r.Store().Validate(); err != nil {
		return fmt.Errorf("relations: %w", err)
	}
	return nil
}

// Store is the relations package's view of the section.
func (r RelationsConfig) Store() relations.Config {
	return relations.Config{
		Engine:       r.Engine,
		PostgresURI:  r.PostgresURL,
		Endpoint:     r.Endpoint,
		PresharedKey: r.PresharedKey,
		CAFile:       r.CAFile,
		Insecure:     r.Insecure,
		CallTimeout:  r.CallTimeout,
		CacheSize:    r.CacheSize,
		CacheMaxAge:  r.CacheMaxAge,
	}
}
