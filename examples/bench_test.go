package examples_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/authzen"
	"github.com/ciampdp/pdp/pdp/policy"
)

// todoBody is the request scripts/bench-http.sh sends: Morty (editor)
// updates his own todo.
const todoBody = `{"subject":{"type":"user","id":"CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"},` +
	`"action":{"name":"can_update_todo"},"resource":{"type":"todo","id":"7240d0db-8ff0-41ec-98b2-34a096273b91",` +
	`"properties":{"ownerID":"morty@the-citadel.com"}},"context":{"time":"2026-11-28T10:00:00Z"}}`

// BenchmarkTodoHandler is the server's CPU per request without the network:
// the real engine on the Todo example against the no-op endpoint, through
// the same handler. The gap between the two is what a decision costs.
func BenchmarkTodoHandler(b *testing.B) {
	bundle, err := policy.Load(context.Background(), policy.DirsFor("authzen-todo"))
	if err != nil {
		b.Fatal(err)
	}
	engine := pdp.NewEngine(pdp.Components{Bundles: bundle})
	srv, err := api.New(api.Config{EnableNoop: true}, api.Deps{
		Decider: engine, Searcher: engine, Policies: fixedStatus{bundle}, Registry: prometheus.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	for _, path := range []string{"/access/v1/noop", "/access/v1/evaluation"} {
		b.Run(strings.TrimPrefix(path, "/access/v1/"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(todoBody))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// BenchmarkTodoDecide is the engine alone on the same request.
func BenchmarkTodoDecide(b *testing.B) {
	bundle, err := policy.Load(context.Background(), policy.DirsFor("authzen-todo"))
	if err != nil {
		b.Fatal(err)
	}
	e := pdp.NewEngine(pdp.Components{Bundles: bundle})
	req, err := authzen.DecodeEvaluation([]byte(todoBody))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Decide(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
