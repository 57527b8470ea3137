package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/jwtverify"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/signalledger"
	"github.com/ciampdp/pdp/pdp/signals"
)

// Engines of the signal ledger.
const (
	SignalsAuto     = "auto"
	SignalsFile     = "file"
	SignalsPostgres = "postgres"
	SignalsOff      = "off"
)

// Delivery methods of a transmitter.
const (
	DeliveryPush = "push" // RFC 8935: the transmitter POSTs to /ssf/events
	DeliveryPoll = "poll" // RFC 8936: the PDP polls the transmitter
)

// Sentinel errors of the signals section.
var (
	ErrSignalsEngine = errors.New("signals.engine must be auto, file, postgres or off")
	ErrTransmitter   = errors.New("invalid signals.transmitters entry")
)

// SignalsConfig is the risk signal receiver: where the signal ledger
// lives and which transmitters it trusts. "auto" (the default) keeps the
// ledger in a local file when transmitters are configured and the bundle
// has a signals registry (schema/signals.yaml), and turns it off
// otherwise (velocity rules apply without it).
type SignalsConfig struct {
	Engine       string              `mapstructure:"engine"`
	Path         string              `mapstructure:"path"`
	PostgresURL  string              `mapstructure:"postgres_url"`
	Transmitters []TransmitterConfig `mapstructure:"transmitters"`
	// AdminApplications read subjects' signals at /v1/signals.
	AdminApplications []string `mapstructure:"admin_applications"`
	// SyncInterval is how often a PostgreSQL ledger reads the signals
	// other replicas stored.
	SyncInterval time.Duration `mapstructure:"sync_interval"`
	// VelocityMaxKeys bounds the values (e.g. IPs) velocity rules count,
	// and the subjects failed step-up rules count, together.
	VelocityMaxKeys int `mapstructure:"velocity_max_keys"`
	// Outgoing makes the PDP a transmitter of its own changes.
	Outgoing OutgoingSignalsConfig `mapstructure:"outgoing"`
}

// TransmitterConfig is one trusted SSF transmitter.
type TransmitterConfig struct {
	Issuer   string   `mapstructure:"issuer"`
	Audience []string `mapstructure:"audience"`
	// JWKS is the transmitter's JWKS written into the configuration (a
	// JSON document): no file to find, whatever the working folder.
	JWKS       string        `mapstructure:"jwks"`
	JWKSFile   string        `mapstructure:"jwks_file"`
	JWKSURL    string        `mapstructure:"jwks_url"`
	Algorithms []string      `mapstructure:"algorithms"`
	Delivery   string        `mapstructure:"delivery"`
	MaxAge     time.Duration `mapstructure:"max_age"`
	Skew       time.Duration `mapstructure:"skew"`
	MaxBytes   int           `mapstructure:"max_bytes"`
	// PollURL is the transmitter's poll endpoint (delivery: poll, RFC
	// 8936); PollTokenFile holds the bearer token it wants, if any.
	PollURL       string        `mapstructure:"poll_url"`
	PollInterval  time.Duration `mapstructure:"poll_interval"`
	PollTokenFile string        `mapstructure:"poll_token_file"`
	// PushTokenSHA256, when set, is the SHA-256 (hex, 'pdp hash-key') of
	// the bearer token the transmitter must send with each push.
	PushTokenSHA256 string `mapstructure:"push_token_sha256"`
	// ConfigurationURL is the transmitter's /.well-known/ssf-configuration
	// when it offers stream management: the PDP reads or creates its
	// stream there (with StreamTokenFile's bearer token), for push at
	// PushURL (this PDP's /ssf/events as the transmitter reaches it), for
	// poll at the endpoint the stream names (poll_url then optional).
	ConfigurationURL string `mapstructure:"configuration_url"`
	StreamTokenFile  string `mapstructure:"stream_token_file"`
	PushURL          string `mapstructure:"push_url"`
}

// DefaultSignals is auto, with the file store beside the consent ledger
// (an empty Path: signals.jsonl in consent.path's folder).
func DefaultSignals() SignalsConfig {
	return SignalsConfig{Engine: SignalsAuto, SyncInterval: time.Second}
}

// autoSignals resolves what signals.engine: auto leaves open from the
// consent section: with the consent ledger on PostgreSQL, the signal
// ledger is in the same database (replicas share what they receive); else
// signals.path defaults to signals.jsonl beside the consent ledger.
func autoSignals(cfg SignalsConfig, consent ConsentConfig) SignalsConfig {
	if cfg.Engine == SignalsAuto && cfg.PostgresURL == "" && consent.Engine == ConsentPostgres {
		cfg.PostgresURL = consent.PostgresURL
	}
	cfg.Path = signalsPath(cfg, consent.Path)
	return cfg
}

// signalsPath is where the file ledger lives: signals.path, or
// signals.jsonl beside the consent ledger's file.
func signalsPath(cfg SignalsConfig, consentPath string) string {
	if cfg.Path != "" {
		return cfg.Path
	}
	return filepath.Join(filepath.Dir(consentPath), "signals.jsonl")
}

// Validate checks the section.
func (c SignalsConfig) Validate() error {
	switch c.Engine {
	case SignalsAuto, SignalsFile:
	case SignalsPostgres:
		if c.PostgresURL == "" {
			return errors.New("signals.postgres_url is required when signals.engine is postgres")
		}
	case SignalsOff:
	default:
		return fmt.Errorf("%q: %w", c.Engine, ErrSignalsEngine)
	}
	if c.SyncInterval < 0 || c.VelocityMaxKeys < 0 {
		return errors.New("signals.sync_interval and signals.velocity_max_keys must not be negative")
	}
	if err := c.Outgoing.Validate(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, t := range c.Transmitters {
		fail := func(msg string) error { return fmt.Errorf("signals.transmitters[%d]: %w: %s", i, ErrTransmitter, msg) }
		switch {
		case t.Issuer == "":
			return fail("issuer is required")
		case seen[t.Issuer]:
			return fail("issuer " + t.Issuer + " is listed twice")
		case len(t.Audience) == 0:
			return fail("audience is required")
		case countSet(t.JWKS, t.JWKSFile, t.JWKSURL) != 1:
			return fail("set one of jwks, jwks_file or jwks_url")
		case t.Delivery != "" && t.Delivery != DeliveryPush && t.Delivery != DeliveryPoll:
			return fail("delivery must be push or poll")
		case t.Delivery == DeliveryPoll && t.PollURL == "" && t.ConfigurationURL == "":
			return fail("delivery: poll needs poll_url (or configuration_url)")
		case t.ConfigurationURL != "" && t.Delivery != DeliveryPoll && t.PushURL == "":
			return fail("configuration_url with delivery: push needs push_url (this PDP's /ssf/events as the transmitter reaches it)")
		case t.ConfigurationURL == "" && (t.PushURL != "" || t.StreamTokenFile != ""):
			return fail("push_url and stream_token_file are for configuration_url")
		case t.Delivery != DeliveryPoll && t.PollURL != "":
			return fail("poll_url is for delivery: poll")
		case t.PollInterval < 0:
			return fail("poll_interval must not be negative")
		}
		if t.PushTokenSHA256 != "" {
			if b, err := hex.DecodeString(t.PushTokenSHA256); err != nil || len(b) != sha256.Size {
				return fail("push_token_sha256 must be 64 hex digits ('pdp hash-key')")
			}
		}
		if t.PollURL != "" {
			u, err := url.Parse(t.PollURL)
			if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
				return fail("poll_url must be an absolute https URL (http only on loopback)")
			}
		}
		for name, v := range map[string]string{"configuration_url": t.ConfigurationURL, "push_url": t.PushURL} {
			if v == "" {
				continue
			}
			u, err := url.Parse(v)
			if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
				return fail(name + " must be an absolute https URL (http only on loopback)")
			}
		}
		if t.JWKSURL != "" {
			if u, err := url.Parse(t.JWKSURL); err != nil || u.Scheme != "https" || u.Host == "" {
				return fail("jwks_url must be an absolute https URL")
			}
		}
		seen[t.Issuer] = true
	}
	return nil
}

// openedSignals is the receiver: the verifier, the ledger and the
// velocity counters.
type openedSignals struct {
	// received counts SETs by outcome: accepted, duplicate, unavailable,
	// or the RFC 8935 code of a refusal.
	received *prometheus.CounterVec
	verifier *signals.Verifier
	ledger   *signalledger.Ledger
	reloader *policy.Reloader
	now      func() time.Time
	pollers  []*signalledger.Poller
	// streams are the transmitters with stream management: the stream
	// is made sure of first, then polled (poll delivery).
	streams []streamTask
}

// streamTask is one transmitter's stream, and its poller when polled.
type streamTask struct {
	stream *signalledger.Stream
	poller *signalledger.Poller
	log    *slog.Logger
}

var _ api.Signals = (*openedSignals)(nil)

// signalsEngine is the signal ledger's engine for cfg (resolved by
// autoSignals): the configured one, auto taken as on when transmitters
// are configured and the bundle has a signals registry (registry) —
// PostgreSQL when cfg has its URL (beside a PostgreSQL consent ledger),
// else the file. serve and 'pdp repair' both ask it, so that repair
// checks the store serve reads.
func signalsEngine(cfg SignalsConfig, registry bool) string {
	if cfg.Engine != SignalsAuto {
		return cfg.Engine
	}
	if !registry || len(cfg.Transmitters) == 0 {
		return SignalsOff
	}
	// Where the consent ledger is (autoSignals): its PostgreSQL database,
	// shared by the replicas, or a file beside it.
	if cfg.PostgresURL != "" {
		return SignalsPostgres
	}
	return SignalsFile
}

// openSignalStore opens the signal ledger's store of engine (not off).
func openSignalStore(ctx context.Context, cfg SignalsConfig, engine string, log *slog.Logger) (signalledger.Store, error) {
	var (
		st  signalledger.Store
		err error
	)
	switch engine {
	case SignalsFile:
		st, err = signalledger.OpenFile(cfg.Path, log) // resolved by autoSignals (signalsPath)
	case SignalsPostgres:
		st, err = signalledger.OpenPostgres(ctx, cfg.PostgresURL)
	default:
		err = fmt.Errorf("%q: %w", engine, ErrSignalsEngine)
	}
	if err != nil {
		return nil, fmt.Errorf("open the signal ledger (%s): %w", engine, err)
	}
	return st, nil
}

// openSignals opens the signal ledger and the verifier of the configured
// transmitters, or returns nil when signals are off.
func openSignals(ctx context.Context, cfg SignalsConfig, reloader *policy.Reloader, journal signalledger.Journal, pub signalledger.Publisher, rv signalRevalidation, log *slog.Logger) (*openedSignals, func(), error) {
	b := reloader.Current()
	engine := signalsEngine(cfg, b != nil && b.Signals() != nil)
	if engine == SignalsOff {
		if len(cfg.Transmitters) > 0 {
			return nil, nil, errors.New("signals.transmitters are configured but the signal ledger is off (the bundle has no schema/signals.yaml, or signals.engine: off)")
		}
		log.Info("signal ledger off (no signals.transmitters, no signals registry in the bundle, or signals.engine: off)")
		return nil, func() {}, nil
	}
	var ts []signals.Transmitter
	for _, t := range cfg.Transmitters {
		keys, err := transmitterKeys(t, log)
		if err != nil {
			return nil, nil, err
		}
		push, _ := hex.DecodeString(t.PushTokenSHA256) // checked by Validate
		ts = append(ts, signals.Transmitter{Issuer: t.Issuer, Audience: t.Audience, Keys: keys, Algorithms: t.Algorithms,
			MaxBytes: t.MaxBytes, MaxAge: t.MaxAge, Skew: t.Skew, PushToken: push})
	}
	v, err := signals.NewVerifier(ts)
	if err != nil {
		return nil, nil, err
	}
	st, err := openSignalStore(ctx, cfg, engine, log)
	if err != nil {
		return nil, nil, err
	}
	l, err := signalledger.NewLedger(ctx, signalledger.LedgerConfig{Store: st,
		Registry: func() *signals.Registry {
			if b := reloader.Current(); b != nil {
				return b.Signals()
			}
			return nil
		},
		Journal: journal, Publisher: pub, OnStored: rv.onStored, Revalidates: rv.revalidates, Logger: log, MaxStaleness: maxStaleness(engine, cfg.SyncInterval)})
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	closeFn := func() { _ = l.Close(); _ = st.Close() }
	o := &openedSignals{verifier: v, ledger: l, reloader: reloader, now: time.Now,
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_signals_received_total",
			Help: "SETs pushed or polled, by outcome: accepted, duplicate, unavailable, or the RFC 8935 error of a refusal.",
		}, []string{"outcome"})}
	for _, t := range cfg.Transmitters {
		if t.Delivery != DeliveryPoll && t.ConfigurationURL == "" {
			continue
		}
		tlog := log.With("transmitter", t.Issuer)
		var p *signalledger.Poller
		if t.Delivery == DeliveryPoll {
			token, err := readToken(t.PollTokenFile)
			if err != nil {
				closeFn()
				return nil, nil, fmt.Errorf("signals.transmitters %s: poll_token_file: %w", t.Issuer, err)
			}
			p = &signalledger.Poller{URL: t.PollURL, Token: token, Verify: o.verify, Ledger: l, Interval: t.PollInterval, Logger: tlog}
		}
		if t.ConfigurationURL == "" {
			o.pollers = append(o.pollers, p)
			continue
		}
		token, err := readToken(t.StreamTokenFile)
		if err != nil {
			closeFn()
			return nil, nil, fmt.Errorf("signals.transmitters %s: stream_token_file: %w", t.Issuer, err)
		}
		st := &signalledger.Stream{ConfigurationURL: t.ConfigurationURL, Token: token, Method: signalledger.PushMethod, PushURL: t.PushURL, Logger: tlog}
		if p != nil {
			st.Method = signalledger.PollMethod
		}
		o.streams = append(o.streams, streamTask{stream: st, poller: p, log: tlog})
	}
	log.Info("signal ledger open", "engine", engine, "position", l.Head(), "transmitters", v.Issuers(), "polled", len(o.pollers), "streams", len(o.streams))
	return o, closeFn, nil
}

// background says whether runPollers has work: pollers or streams.
func (o *openedSignals) background() bool { return len(o.pollers)+len(o.streams) > 0 }

// runPollers polls the poll-delivery transmitters, and makes sure of the
// streams of those with stream management, until ctx ends.
func (o *openedSignals) runPollers(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range o.pollers {
		wg.Go(func() { p.Run(ctx) })
	}
	for _, t := range o.streams {
		wg.Go(func() { t.run(ctx) })
	}
	wg.Wait()
}

// run makes sure of the stream, retrying with backoff (1s doubling to a
// minute) until the transmitter answers, then polls it when polled: at
// the stream's endpoint unless poll_url names one.
func (t streamTask) run(ctx context.Context) {
	wait := time.Second
	for {
		st, err := t.stream.Ensure(ctx)
		if err == nil {
			if t.poller != nil {
				if t.poller.URL == "" {
					t.poller.URL = st.Delivery.EndpointURL
				}
				t.poller.Run(ctx)
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		t.log.WarnContext(ctx, "SSF stream not ready; retrying", "in", wait, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// readToken reads a bearer token file ("" for none).
func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(raw)), nil
}

// maxStaleness is how long a shared (PostgreSQL) ledger may go unread
// before decisions fail closed: ten sync intervals (at least 5s). A file
// ledger has one writer, this process, and is never stale.
func maxStaleness(engine string, every time.Duration) time.Duration {
	if engine != SignalsPostgres || every <= 0 {
		return 0
	}
	return max(10*every, 5*time.Second)
}

// runSync reads, every interval, the signals other replicas stored in a
// shared (PostgreSQL) ledger, until ctx ends.
func (o *openedSignals) runSync(ctx context.Context, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := o.ledger.Sync(ctx); err != nil && ctx.Err() == nil {
				log.Warn("signal ledger: reading other replicas' signals failed", "error", err)
			}
		}
	}
}

// Receive implements api.Signals: a pushed SET, verified, from a
// transmitter that sent its bearer token when it must.
func (o *openedSignals) Receive(ctx context.Context, body []byte, bearer string) (evs []signals.Event, err error) {
	defer func() { o.received.WithLabelValues(outcome(err)).Inc() }()
	s, err := o.verifier.Verify(body, o.now())
	if err != nil {
		return nil, err
	}
	if err := o.verifier.CheckPushToken(s.Issuer, bearer); err != nil {
		return nil, err
	}
	return o.ledger.Receive(ctx, s)
}

// verify verifies a polled SET, counting refusals like pushed ones (the
// ledger's answer is counted by the poller's log).
func (o *openedSignals) verify(raw []byte, now time.Time) (*signals.SET, error) {
	s, err := o.verifier.Verify(raw, now)
	if err != nil {
		o.received.WithLabelValues(outcome(err)).Inc()
	}
	return s, err
}

// outcome is the metric label of a receive's error.
func outcome(err error) string {
	var se *signals.SETError
	switch {
	case err == nil:
		return "accepted"
	case errors.As(err, &se):
		return se.Code
	case errors.Is(err, signalledger.ErrDuplicate):
		return "duplicate"
	}
	return "unavailable"
}

// MaxBytes implements api.Signals.
func (o *openedSignals) MaxBytes() int { return o.verifier.MaxBytes() }

// Subject implements api.Signals.
func (o *openedSignals) Subject(_ context.Context, typ, id string) (api.SignalSubject, error) {
	b := o.reloader.Current()
	et, ok := b.EntityType(typ)
	if !ok {
		return api.SignalSubject{}, fmt.Errorf("%q: %w", typ, api.ErrUnknownType)
	}
	entity := signals.EntityKey(string(et), id)
	evs := o.ledger.History(entity)
	out := api.SignalSubject{Entity: entity, Active: []api.ActiveSignal{}, History: evs}
	if out.History == nil {
		out.History = []signals.Event{}
	}
	reg := b.Signals()
	// Active for any request: session rules as for a session older than
	// every event.
	for _, a := range reg.Active(evs, "", signals.Session{Known: true}, o.now()) {
		out.Active = append(out.Active, api.ActiveSignal{Event: *a.Event, Rule: a.Rule.Name, Reason: a.Rule.Reason, Effects: a.Rule.Effects, Scope: a.Rule.Scope})
	}
	return out, nil
}

// transmitterKeys loads a transmitter's JWKS: a file at once; a URL at
// once when it answers, and again when the keys are an hour old (or
// missing, at most every 30 seconds).
func transmitterKeys(t TransmitterConfig, log *slog.Logger) (signals.Keys, error) {
	if t.JWKS != "" {
		keys, err := jwtverify.ParseJWKS([]byte(t.JWKS))
		if err != nil {
			return nil, fmt.Errorf("signals.transmitters %s: jwks: %w", t.Issuer, err)
		}
		return signals.StaticKeys(keys), nil
	}
	if t.JWKSFile != "" {
		raw, err := os.ReadFile(t.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("signals.transmitters %s: %w", t.Issuer, err)
		}
		keys, err := jwtverify.ParseJWKS(raw)
		if err != nil {
			return nil, fmt.Errorf("signals.transmitters %s: %s: %w", t.Issuer, t.JWKSFile, err)
		}
		return signals.StaticKeys(keys), nil
	}
	k := &urlKeys{url: t.JWKSURL, log: log.With("transmitter", t.Issuer), hc: &http.Client{Timeout: 10 * time.Second}}
	k.Keys()
	return k, nil
}

// urlKeys caches the JWKS at an https URL.
type urlKeys struct {
	url string
	log *slog.Logger
	hc  *http.Client

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time
	tried   time.Time
}

// Keys implements signals.Keys.
func (k *urlKeys) Keys() []jose.JSONWebKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	stale := k.keys == nil || now.Sub(k.fetched) > time.Hour
	if stale && now.Sub(k.tried) > 30*time.Second {
		k.tried = now
		if keys, err := k.fetch(); err != nil {
			k.log.Warn("transmitter JWKS unavailable; keeping the keys held", "url", k.url, "error", err)
		} else {
			k.keys, k.fetched = keys, now
		}
	}
	return k.keys
}

func (k *urlKeys) fetch() ([]jose.JSONWebKey, error) {
	res, err := k.hc.Get(k.url)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", k.url, res.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	return jwtverify.ParseJWKS(raw)
}

// countSet counts the non-empty strings.
func countSet(vs ...string) int {
	n := 0
	for _, v := range vs {
		if v != "" {
			n++
		}
	}
	return n
}
