package console

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/trail"
)

// Prefix is where the console is mounted.
const Prefix = "/console/"

// DefaultSessionTTL is how long a console session lasts without Config.SessionTTL.
const DefaultSessionTTL = 8 * time.Hour

// Auditor answers the auditor's reads: *audit.Service, as for /v1/audit.
type Auditor interface {
	Explain(ctx context.Context, id string) (audit.Explanation, error)
	QueryPage(ctx context.Context, f audit.Filter, before uint64, limit int) (audit.QueryResult, error)
	PerMinute(ctx context.Context, start time.Time, n int) ([]int, error)
}

// AdminRecorder records the auditor's reads in the trail before they are
// answered, as the audit API does.
type AdminRecorder interface {
	RecordAdmin(ctx context.Context, action, application, target string, detail any) error
}

// Trail is the decision trail the proofs and the trail page read.
type Trail interface {
	Size() uint64
	Scan(from, to uint64, fn func(trail.Record) error) error
	Checkpoints() [][]byte
	Prove(seq uint64, checkpoint []byte) (trail.Proof, error)
	Verify(ctx context.Context, verifierKey string, from, to uint64) (trail.Report, error)
}

// Delegations reads the delegation records a decision relied on.
type Delegations interface {
	Get(ctx context.Context, id string) (delegation.Delegation, error)
	List(ctx context.Context, f delegation.Filter) ([]delegation.Delegation, error)
}

// Consents reads a data subject's consent history and receipts.
type Consents interface {
	HistoryFor(ctx context.Context, subject consent.Ref, r consent.Reader) ([]consent.Event, error)
	ReceiptFor(ctx context.Context, eventID string, r consent.Reader) (string, error)
}

// Config is the console's part of the server configuration.
type Config struct {
	// AuditorKeys maps the hex SHA-256 digest of each auditor key to the
	// auditor; only these open the console.
	AuditorKeys map[string]string
	// APIKeys are the applications' key digests: refused with a message
	// that says so. Both empty: authentication is off (loopback only), and
	// the console opens for the auditor "local" without a key.
	APIKeys map[string]string
	// SessionTTL is how long a session lasts (0: DefaultSessionTTL).
	SessionTTL time.Duration
}

// Deps are the console's collaborators; Auditor is required.
type Deps struct {
	Auditor     Auditor
	Recorder    AdminRecorder  // nil: reads are not recorded
	Trail       Trail          // nil: no proofs, no trail page
	VerifierKey string         // the checkpoints' verifier key
	Delegations Delegations    // nil: the chain shows record ids only
	Consents    Consents       // nil: no consent timeline
	Proposals   ProposalLoader // nil: no what-if
	Logger      *slog.Logger
	Now         func() time.Time // nil: time.Now
}

// ErrDeps: New was given no Auditor.
var ErrDeps = errors.New("console: an Auditor is required")

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Console is the console's HTTP handler and its sessions.
type Console struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	now      func() time.Time
	keys     keys
	sessions *sessions
	pages    map[string]*template.Template
	jobs     *jobs
	whatIfs  whatIfRuns
	css      []byte
	mux      *http.ServeMux
	csp      string
}

// New builds the console.
func New(cfg Config, deps Deps) (*Console, error) {
	if deps.Auditor == nil {
		return nil, ErrDeps
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	c := &Console{cfg: cfg, deps: deps, log: deps.Logger, now: deps.Now,
		keys: newKeys(cfg.AuditorKeys, cfg.APIKeys), jobs: newJobs()}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.sessions = newSessions(cfg.SessionTTL, c.now)
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if c.css, err = fs.ReadFile(staticFS, "static/console.css"); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	sum := sha256.Sum256(c.css)
	// The stylesheet is allowed by its hash as well as by origin.
	c.csp = "default-src 'none'; style-src 'self' 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	c.mux = c.routes()
	return c, nil
}

func (c *Console) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /console/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"decisions", http.StatusSeeOther)
	})
	m.HandleFunc("GET /console/static/console.css", c.serveCSS)
	m.HandleFunc("GET /console/login", c.loginForm)
	m.HandleFunc("POST /console/login", c.login)
	m.HandleFunc("POST /console/logout", c.signedIn(c.logout))
	m.HandleFunc("GET /console/decisions", c.signedIn(c.decisions))
	m.HandleFunc("GET /console/decisions/{id}", c.signedIn(c.decision))
	m.HandleFunc("GET /console/customers/{ref}", c.signedIn(c.customer))
	m.HandleFunc("GET /console/whatif", c.signedIn(c.whatIfForm))
	m.HandleFunc("POST /console/whatif", c.signedIn(c.startWhatIf))
	m.HandleFunc("GET /console/whatif/{run}", c.signedIn(c.whatIfPage))
	m.HandleFunc("GET /console/trail", c.signedIn(c.trailPage))
	m.HandleFunc("POST /console/trail/verify", c.signedIn(c.startVerify))
	m.HandleFunc("GET /console/trail/verify/{job}", c.signedIn(c.verifyPage))
	m.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, nil, http.StatusNotFound, "no such page")
	})
	return m
}

// ServeHTTP answers the console's routes with the security headers on
// every answer.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", c.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if r.URL.Path == "/console" {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	c.mux.ServeHTTP(w, r)
}

func (c *Console) serveCSS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=3600")
	_, _ = w.Write(c.css)
}
