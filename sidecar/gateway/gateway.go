package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/reason"
)

// Reason codes of the answers the gateway gives itself, without a PDP
// decision. They travel like the PDP's codes (X-Decision-Reasons).
const (
	ReasonRouteNotFound   = reason.RouteNotFound   // no route matches (and unmatched is deny)
	ReasonInvalidPath     = reason.InvalidPath     // the path is not canonical (see SplitPath)
	ReasonUnauthenticated = reason.Unauthenticated // no credentials
	ReasonInvalidToken    = reason.InvalidToken    // credentials that do not verify
	ReasonInvalidInput    = reason.InvalidInput    // a route value does not convert (same code as the engine's)
	ReasonAmbiguous       = reason.Ambiguous       // the upstream may read the query or a mapped value differently (see target.go)
	ReasonPDPUnavailable  = reason.PDPUnavailable  // the Evaluator failed: fail closed
	ReasonKeysUnavailable = reason.KeysUnavailable // the JWKS cannot be loaded: fail closed
)

// Deps are the gateway's collaborators.
type Deps struct {
	// Evaluator decides; required.
	Evaluator Evaluator
	// Logger gets one Debug line per answer and a Warn line per failure to
	// decide; nil discards.
	Logger *slog.Logger
	// HTTPClient fetches the JWKS URL; nil means a default client.
	HTTPClient *http.Client
}

// Gateway turns proxied requests into evaluations and answers for the
// proxy. Safe for concurrent use.
type Gateway struct {
	cfg    Config
	routes *Routes
	auth   *authenticator
	eval   Evaluator
	log    *slog.Logger
}

// New validates cfg, compiles its routes and, with a JWKS file, loads the
// keys (a JWKS URL is fetched on first use; call Verifier().Load to fetch
// it at start-up).
func New(cfg Config, deps Deps) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if deps.Evaluator == nil {
		return nil, errors.New("gateway: an Evaluator is required")
	}
	cfg = cfg.WithDefaults()
	g := &Gateway{cfg: cfg, eval: deps.Evaluator, log: deps.Logger}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	routes, err := compileRoutes(cfg.Routes)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.routes = routes
	g.auth = &authenticator{cfg: cfg.Subject}
	if cfg.Subject.JWT.enabled() {
		v, err := NewVerifier(cfg.Subject.JWT, VerifierDeps{HTTPClient: deps.HTTPClient, Logger: g.log})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		g.auth.verifier = v
	}
	return g, nil
}

// Verifier returns the JWT verifier, nil in trusted-header mode.
func (g *Gateway) Verifier() *Verifier { return g.auth.verifier }

// Request is one authorization question from a proxy: the original
// request's method, escaped path, raw query and headers.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
}

// Verdict is the gateway's answer to a Request.
type Verdict struct {
	// Status is 200 (allow), 401 (no or invalid credentials), 403 (deny)
	// or 503 (no decision could be made: deny).
	Status int
	// DecisionID is the PDP's decision id, or a gateway-made one when
	// Local (then the id is only in the gateway's log, not in the trail).
	DecisionID string
	Local      bool
	// Reasons and Obligations are the PDP's reason codes (or the
	// gateway's own, above) and obligations.
	Reasons     []string
	Obligations []string
	// Route is the matched route's name; Subject the authenticated
	// subject id.
	Route   string
	Subject string
	// OnBehalfOf is whom an allowed decision let the subject act for
	// ("user:alice"): set only when the PDP relied on an active
	// delegation.
	OnBehalfOf string
	// Challenge is the WWW-Authenticate value of a 401.
	Challenge string
	// Err is the cause of a 401 or 503, for logs.
	Err error
}

// Allowed reports whether the verdict lets the request through.
func (v Verdict) Allowed() bool { return v.Status == http.StatusOK }

// Check answers r: match the route, authenticate, evaluate. Every failure
// is a deny; Check never returns an error.
func (g *Gateway) Check(ctx context.Context, r Request) Verdict {
	req, early := g.prepare(ctx, r)
	if early != nil {
		g.logVerdict(ctx, r, early)
		return *early
	}
	v := g.evaluate(ctx, req)
	v.Route, v.Subject = req.route, req.Subject.ID
	g.logVerdict(ctx, r, &v)
	return v
}

// routedRequest is an evaluation with the route it came from.
type routedRequest struct {
	pdp.Request
	route string
}

// prepare builds the evaluation of r, or the verdict that answers it
// without the PDP.
func (g *Gateway) prepare(ctx context.Context, r Request) (routedRequest, *Verdict) {
	route, vars, err := g.routes.Match(r.Method, r.Path)
	if err != nil {
		return routedRequest{}, g.local(http.StatusForbidden, ReasonInvalidPath, err)
	}
	if route == nil {
		if g.cfg.Unmatched == UnmatchedAllow {
			return routedRequest{}, g.local(http.StatusOK, "", nil)
		}
		return routedRequest{}, g.local(http.StatusForbidden, ReasonRouteNotFound, nil)
	}
	id, err := g.auth.authenticate(ctx, r.Header)
	if err != nil {
		v := g.authFailure(err)
		v.Route = route.Name
		return routedRequest{}, v
	}
	query, err := parseQuery(r.RawQuery)
	if err != nil {
		v := g.local(http.StatusForbidden, ReasonAmbiguous, err)
		v.Route, v.Subject = route.Name, id.subject.ID
		return routedRequest{}, v
	}
	in := &valueInput{vars: vars, header: r.Header, query: query, claims: id.claims}
	req, err := route.request(id.subject, in)
	if err != nil {
		reason := ReasonInvalidInput
		if errors.Is(err, errAmbiguous) {
			reason = ReasonAmbiguous
		}
		v := g.local(http.StatusForbidden, reason, err)
		v.Route, v.Subject = route.Name, id.subject.ID
		return routedRequest{}, v
	}
	if id.onBehalfOf != nil {
		if req.Context == nil {
			req.Context = map[string]any{}
		}
		req.Context[pdp.ContextOnBehalfOf] = id.onBehalfOf
	}
	return routedRequest{Request: req, route: route.Name}, nil
}

// authFailure answers a failed authentication.
func (g *Gateway) authFailure(err error) *Verdict {
	realm := `Bearer realm="` + g.cfg.Subject.Realm + `"`
	var te *TokenError
	switch {
	case errors.Is(err, errNoCredentials):
		v := g.local(http.StatusUnauthorized, ReasonUnauthenticated, err)
		v.Challenge = realm
		return v
	case errors.As(err, &te):
		v := g.local(http.StatusUnauthorized, ReasonInvalidToken, err)
		desc := strings.NewReplacer(`"`, "'", `\`, "/").Replace(te.Reason)
		v.Challenge = realm + `, error="invalid_token", error_description="` + desc + `"`
		return v
	default: // keys unavailable, or anything unforeseen: fail closed
		return g.local(http.StatusServiceUnavailable, ReasonKeysUnavailable, err)
	}
}

// evaluate asks the Evaluator, within the configured timeout.
func (g *Gateway) evaluate(ctx context.Context, req routedRequest) Verdict {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	ans, err := g.eval.Evaluate(ctx, req.Request)
	if err != nil {
		return *g.local(http.StatusServiceUnavailable, ReasonPDPUnavailable, err)
	}
	v := Verdict{Status: http.StatusForbidden}
	if ans.Decision {
		v.Status = http.StatusOK
	}
	if c := ans.Context; c != nil {
		v.DecisionID, v.Reasons, v.Obligations = c.DecisionID, c.Reasons, c.Obligations
		if ans.Decision && c.DelegationStatus == pdp.DelegationActive {
			v.OnBehalfOf = actingFor(req.Context)
		}
	}
	if v.DecisionID == "" {
		v.DecisionID, v.Local = newLocalID(), true
	}
	return v
}

// actingFor names the principal in an evaluation's context.on_behalf_of,
// "type:id".
func actingFor(ctx map[string]any) string {
	m, ok := ctx[pdp.ContextOnBehalfOf].(map[string]any)
	if !ok {
		return ""
	}
	typ, _ := m["type"].(string)
	id, _ := m["id"].(string)
	if typ == "" || id == "" {
		return ""
	}
	return typ + ":" + id
}

// local is a verdict the gateway makes itself.
func (g *Gateway) local(status int, reason string, err error) *Verdict {
	v := &Verdict{Status: status, DecisionID: newLocalID(), Local: true, Err: err}
	if reason != "" {
		v.Reasons = []string{reason}
	}
	return v
}

func newLocalID() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}

func (g *Gateway) logVerdict(ctx context.Context, r Request, v *Verdict) {
	level := slog.LevelDebug
	if v.Status >= 500 {
		level = slog.LevelWarn
	}
	if !g.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("decision_id", v.DecisionID),
		slog.Bool("local", v.Local),
		slog.Int("status", v.Status),
		slog.String("method", r.Method),
		slog.String("path", r.Path),
		slog.String("route", v.Route),
		slog.String("subject", v.Subject),
		slog.Any("reasons", v.Reasons),
	}
	if v.Err != nil {
		attrs = append(attrs, slog.String("error", v.Err.Error()))
	}
	g.log.LogAttrs(ctx, level, "gateway verdict", attrs...)
}

// headerSafe keeps the characters of reason codes and obligations that are
// safe in a header value list.
func headerSafe(ss []string) string {
	var b strings.Builder
	for _, s := range ss {
		if s == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		for _, c := range s {
			if c < utf8.RuneSelf && (c == '_' || c == '-' || c == '.' || c == ':' || c == '/' ||
				c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				b.WriteRune(c)
			} else {
				b.WriteByte('_')
			}
		}
	}
	return b.String()
}
