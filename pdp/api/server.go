package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/authzen"
	"github.com/ciampdp/pdp/pdp/changefeed"
	"github.com/ciampdp/pdp/pdp/ingest"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// PolicyStatus reports the policy loader's state.
type PolicyStatus interface {
	Status() policy.Status
}

// Deps are the server's collaborators.
type Deps struct {
	Decider pdp.Decider // required
	// Searcher answers the AuthZEN search APIs (/access/v1/search/…,
	// advertised in the metadata document); nil leaves them out. It is
	// given explicitly, not found in the Decider: a wrapper of the engine
	// (the trail's recorder) is passed here as well.
	Searcher pdp.Searcher
	Policies PolicyStatus // required
	// Logger receives errors (Error) and, at Debug, one line per decision.
	// Nil discards.
	Logger *slog.Logger
	// Registry receives the server's metrics and is served at /metrics.
	// Nil means a private registry.
	Registry *prometheus.Registry
	// Version is the build version, shown by /healthz.
	Version string
	// Delegations serves the admin API of delegation records at
	// /v1/delegations; nil leaves it out.
	Delegations Delegations
	// Consents serves the admin API of the consent ledger at /v1/consents;
	// nil leaves it out.
	Consents Consents
	// Dormancy serves revalidations at /v1/dormancy and the auditor's
	// report at /v1/audit/dormancy; nil leaves them out.
	Dormancy Dormancy
	// Signals receives risk signals (SETs pushed to SSFEventsPath) and
	// shows them at SignalsPath; nil leaves both out.
	Signals Signals
	// Transmitter is the PDP as a transmitter of its own changes: its
	// JWKS and SSF configuration are served at SSFJWKSPath and
	// SSFConfigurationPath; nil leaves them out.
	Transmitter Transmitter
	// TrailKey is the decision trail's checkpoint verifier key (signed-note
	// format), served at TrailKeyPath; empty leaves the route out.
	TrailKey string
	// Auditor serves the read-only auditor endpoints (/v1/audit/…); nil
	// leaves them out.
	Auditor Auditor
	// AdminLog records administrative actions (consent and delegation
	// changes, reads of the trail) in the trail before they are answered;
	// nil records none.
	AdminLog AdminRecorder
	// Changes is the change feed sidecars poll at ChangesPath. The
	// delegation and consent services publish every change to it (their
	// Publisher) and wait for the sidecars before the change is answered;
	// the handlers name the sidecars that did not acknowledge. Nil leaves
	// the feed out.
	Changes *changefeed.Changes
	// Ingest stores the sidecars' decision records posted to
	// TrailIngestPath; nil leaves the route out.
	Ingest *ingest.Ingest
	// Trail, when set, is asked by /readyz whether decisions can be
	// recorded: while they cannot, the PDP is not ready (503,
	// trail_unavailable).
	Trail TrailHealth
	// Console is the auditor's web console, served under ConsolePath; nil
	// leaves it out.
	Console http.Handler
}

// TrailHealth says whether the decision trail records: *recorder.Recorder.
type TrailHealth interface {
	Ready(ctx context.Context) error
}

// Routes of the endpoints that are not under Config.BasePath.
const (
	PoliciesPath = "/v1/policies"
	HealthzPath  = "/healthz"
	ReadyzPath   = "/readyz"
	MetricsPath  = "/metrics"
	TrailKeyPath = "/v1/trail/key"
	// ConsolePath is where the auditor's web console is.
	ConsolePath = "/console"
	// NoopPath is relative to BasePath, like the AuthZEN endpoints.
	NoopPath = "/access/v1/noop"
)

// Server is the PDP's HTTP front: the AuthZEN endpoints, the metadata
// document, the policy status and the operational endpoints.
type Server struct {
	detachedWG  sync.WaitGroup // changes carried through (detach)
	detachMu    sync.Mutex     // guards detachShut and detachedWG.Add against waitDetached
	detachShut  bool           // waitDetached began: no change begins any more
	cfg         Config
	decider     pdp.Decider
	searcher    pdp.Searcher // nil: no search routes
	delegations Delegations
	consents    Consents
	dormancy    Dormancy
	signals     Signals
	transmitter Transmitter
	policies    PolicyStatus
	log         *slog.Logger
	version     string
	keys        keyring
	auditors    keyring // nil: no auditor keys
	auditor     Auditor
	adminLog    AdminRecorder
	changes     *changefeed.Changes // nil: no change feed
	ingest      *ingest.Ingest      // nil: no sidecar records
	trail       TrailHealth
	metrics     *metrics
	echo        *echo.Echo
	// metadata is the encoded metadata document, once the PDP identifier is
	// known (from Config.PublicURL, or from the listener in Serve).
	metadata atomic.Pointer[metadataDoc]
	// publicURL is the base URL the metadata was built from ("" until
	// known).
	publicURL atomic.Value
}

// New builds a server. It registers the metrics on deps.Registry, so it can
// be called once per registry.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("api: invalid config: %w", err)
	}
	if deps.Decider == nil || deps.Policies == nil {
		return nil, fmt.Errorf("api: %w", ErrDeps)
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:         cfg,
		decider:     deps.Decider,
		searcher:    deps.Searcher,
		policies:    deps.Policies,
		log:         deps.Logger,
		version:     deps.Version,
		keys:        newKeyring(cfg.APIKeys),
		delegations: deps.Delegations,
		consents:    deps.Consents,
		dormancy:    deps.Dormancy,
		signals:     deps.Signals,
		transmitter: deps.Transmitter,
		auditors:    newKeyring(cfg.AuditorKeys),
		auditor:     deps.Auditor,
		adminLog:    deps.AdminLog,
		changes:     deps.Changes,
		ingest:      deps.Ingest,
		trail:       deps.Trail,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg, s.policies, s.keys.applications())
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s.metrics = m
	var extra []prometheus.Collector
	if deps.Changes != nil {
		extra = append(extra, deps.Changes)
	}
	if deps.Ingest != nil {
		extra = append(extra, deps.Ingest)
	}
	for _, c := range extra {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: register metrics: %w", err)
		}
	}
	if cfg.PublicURL != "" {
		if err := s.setPublicURL(cfg.PublicURL); err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
	}
	s.echo = s.routes(reg, deps)
	return s, nil
}

// routes builds the router. BasePath prefixes only the AuthZEN endpoints.
func (s *Server) routes(reg *prometheus.Registry, deps Deps) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Logger.SetOutput(io.Discard)
	e.HTTPErrorHandler = s.handleError
	e.Use(s.frame)

	base := s.cfg.BasePath
	e.POST(base+authzen.EvaluationPath, s.authzenBody(s.evaluation))
	e.POST(base+authzen.EvaluationsPath, s.authzenBody(s.evaluations))
	if s.cfg.EnableNoop {
		e.POST(base+NoopPath, s.authzenBody(s.noop))
	}
	if s.searcher != nil {
		e.POST(base+authzen.SearchSubjectPath, s.authzenBody(s.search(authzen.SearchSubject)))
		e.POST(base+authzen.SearchResourcePath, s.authzenBody(s.search(authzen.SearchResource)))
		e.POST(base+authzen.SearchActionPath, s.authzenBody(s.search(authzen.SearchAction)))
	}
	e.GET(authzen.WellKnownPath, s.wellKnown)
	e.GET(authzen.WellKnownPath+"/*", s.wellKnown)
	e.GET(PoliciesPath, s.policyStatus, s.keys.requireAuth)
	s.delegationRoutes(e)
	s.consentRoutes(e)
	s.dormancyRoutes(e)
	s.signalRoutes(e)
	s.transmitterRoutes(e)
	s.auditRoutes(e)
	if s.changes != nil {
		e.GET(ChangesPath, s.pollChanges)
	}
	if s.ingest != nil {
		e.POST(TrailIngestPath, s.ingestTrail)
	}
	if key := deps.TrailKey; key != "" {
		e.GET(TrailKeyPath, func(c echo.Context) error { return c.String(http.StatusOK, key+"\n") })
	}
	if h := deps.Console; h != nil {
		// A browser's surface: pages (GET) and forms (POST) only.
		for _, path := range []string{ConsolePath, ConsolePath + "/*"} {
			e.GET(path, echo.WrapHandler(h))
			e.POST(path, echo.WrapHandler(h))
		}
	}
	e.GET(HealthzPath, s.healthz)
	e.GET(ReadyzPath, s.readyz)
	e.GET(MetricsPath, echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	e.GET(OpenAPIPath, s.openAPI)
	return e
}

// frame wraps every request: X-Request-ID, panic recovery, error handling in
// handleError, and the request counter.
func (s *Server) frame(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		res := c.Response()
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if id == "" {
			id = uuid.NewString()
		}
		res.Header().Set(echo.HeaderXRequestID, id)
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
			if err != nil {
				s.handleError(err, c)
				err = nil
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			s.metrics.request(route, res.Status)
		}()
		return next(c)
	}
}

// Handler returns the server's routes as an http.Handler.
func (s *Server) Handler() http.Handler { return s.echo }

// Serve answers requests on ln until ctx is cancelled, then shuts down
// gracefully: it stops accepting, lets in-flight requests finish within
// Config.ShutdownTimeout, and closes what remains. It returns nil after a
// clean shutdown. If Config.PublicURL is empty, the PDP identifier is derived
// from ln's address.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.cfg.PublicURL == "" {
		if err := s.setPublicURL(urlFromAddr(ln.Addr())); err != nil {
			return fmt.Errorf("api: %w", err)
		}
	}
	hs := &http.Server{
		Handler:           s.echo,
		ReadTimeout:       s.cfg.ReadTimeout,
		ReadHeaderTimeout: s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	// Requests run under base: when the grace period is over it is
	// cancelled, so handlers waiting on a store give up (and answer, or
	// fail closed) instead of outliving the shutdown.
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	hs.BaseContext = func(net.Listener) context.Context { return base }
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("api: serve: %w", err)
	case <-ctx.Done():
	}
	if s.changes != nil {
		s.changes.Close() // held polls are answered now, not at their wait
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		cancelBase()
		closeErr := hs.Close()
		<-served
		s.waitDetached()
		return fmt.Errorf("api: shutdown: %w", errors.Join(err, closeErr))
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: serve: %w", err)
	}
	return nil
}

// waitDetached waits for the changes still carried through (each is
// bounded by its own timeout and counted at most detachGrace past it),
// so that what closes after Serve does not close under them.
func (s *Server) waitDetached() {
	s.detachMu.Lock()
	s.detachShut = true
	s.detachMu.Unlock()
	done := make(chan struct{})
	go func() { s.detachedWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.changeBound() + detachGrace + 5*time.Second): // each releases itself by then
		s.log.Error("shutdown: changes still running after their bound; closing anyway")
	}
}

// urlFromAddr derives http://host:port from a listener address; an
// unspecified host (0.0.0.0, ::) becomes localhost.
func urlFromAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}
