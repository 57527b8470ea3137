// Package pdptest starts the real central PDP (pdp/api over a pdp.Engine)
// on a small bank policy bundle, behind an httptest server, for the
// sidecar packages' tests. It is the only place those tests build the
// central API, so they all exercise the same server.
package pdptest

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/policy"
)

// Schema, policies and entities of the test bundle: accounts owned by
// users, bob may view alice's statements when acting for her, payments
// over 1000 are forbidden with a step-up obligation.
const (
	Schema = `
entity User;
entity Account { owner: User };
action view_statements appliesTo { principal: [User], resource: [Account],
  context: { on_behalf_of?: User, purpose?: String } };
action make_payment appliesTo { principal: [User], resource: [Account],
  context: { on_behalf_of?: User, amount?: Long, currency?: String, purpose?: String } };
`
	Policies = `
@id("owner-views")
permit (principal, action == Action::"view_statements", resource) when { resource.owner == principal };
@id("owner-pays")
permit (principal, action == Action::"make_payment", resource) when { resource.owner == principal };
@id("bob-views-for-alice")
permit (principal == User::"bob", action == Action::"view_statements", resource)
  when { context has on_behalf_of && context.on_behalf_of == User::"alice" && resource.owner == User::"alice" };
@id("big-payment")
@reason("amount_too_high")
@obligation("step_up_authentication")
forbid (principal, action == Action::"make_payment", resource) when { context has amount && context.amount > 1000 };
`
	Entities = `[
 {"uid":{"type":"User","id":"alice"},"attrs":{},"parents":[]},
 {"uid":{"type":"User","id":"bob"},"attrs":{},"parents":[]},
 {"uid":{"type":"User","id":"carol"},"attrs":{},"parents":[]},
 {"uid":{"type":"Account","id":"acc-alice"},"attrs":{"owner":{"__entity":{"type":"User","id":"alice"}}},"parents":[]},
 {"uid":{"type":"Account","id":"acc-bob"},"attrs":{"owner":{"__entity":{"type":"User","id":"bob"}}},"parents":[]}
]`
)

// Application and APIKey are the one application the server knows.
const (
	Application = "mobile-banking"
	APIKey      = "test-key-mobile-banking"
)

// Options vary the server.
type Options struct {
	// NotReady serves with no policy version loaded: every evaluation
	// answers 503.
	NotReady bool
	// BodyLimit is the server's body limit (0: its default).
	BodyLimit int64
	// Wrap, if set, wraps the API handler (to record requests).
	Wrap func(http.Handler) http.Handler
}

// Server is a running central PDP.
type Server struct {
	URL    string
	Engine *pdp.Engine
	HTTP   *httptest.Server
}

// Bundle loads the test bundle.
func Bundle(t testing.TB) *policy.Bundle {
	t.Helper()
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/bank.cedarschema": []byte(Schema),
		"policies/bank.cedar":     []byte(Policies),
		"policies/entities.json":  []byte(Entities),
	})
	if err != nil {
		t.Fatalf("load test bundle: %v", err)
	}
	return b
}

// Start starts the central PDP; it is closed when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	b := Bundle(t)
	var src pdp.BundleSource = b
	if opts.NotReady {
		src = noBundle{}
	}
	engine := pdp.NewEngine(pdp.Components{Bundles: src})
	sum := sha256.Sum256([]byte(APIKey))
	srv, err := api.New(api.Config{
		APIKeys:   map[string]string{hex.EncodeToString(sum[:]): Application},
		BodyLimit: opts.BodyLimit,
	}, api.Deps{Decider: engine, Searcher: engine, Policies: status{b}, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	var h http.Handler = srv.Handler()
	if opts.Wrap != nil {
		h = opts.Wrap(h)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return &Server{URL: hs.URL, Engine: engine, HTTP: hs}
}

type noBundle struct{}

func (noBundle) Current() *policy.Bundle { return nil }

// status reports the fixed bundle as the active policy version.
type status struct{ b *policy.Bundle }

func (s status) Status() policy.Status {
	return policy.Status{Active: s.b.Version(), LoadedAt: s.b.LoadedAt(), Source: "test", Policies: len(s.b.Policies())}
}
