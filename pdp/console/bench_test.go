package console

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/note"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// benchTrail is a signed file trail of n decision records of 1,000
// customers (every fifth a delegated payment, every seventh denied), all
// anchored, as the recorder would write them.
func benchTrail(b *testing.B, n int) (*trail.FileLog, string, string) {
	b.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "pdp/trail")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}
	l, err := trail.OpenFile(b.TempDir(), trail.FileOptions{Signer: signer})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	start := time.Now().Add(-time.Duration(n) * 30 * time.Millisecond)
	var mid string
	batch := make([]trail.Record, 0, 1000)
	for i := range n {
		id := uuid.Must(uuid.NewV7()).String()
		at := start.Add(time.Duration(i) * 30 * time.Millisecond)
		cust := fmt.Sprintf("u%d", i%1000)
		req := pdp.Request{Subject: pdp.Entity{Type: "user", ID: cust}, Action: pdp.Action{Name: "view_statements"},
			Resource: pdp.Entity{Type: "account", ID: "acc-" + cust}, Context: map[string]any{"purpose": "account_servicing"}}
		d := pdp.Decision{ID: id, Time: at, Allowed: i%7 != 0, Application: "mobile-banking", Policies: []string{"owner-views"},
			Reasons: []string{}, Obligations: []string{}, PolicyVersion: policy.Version{Hash: "sha256:0123456789abcdef"}}
		if !d.Allowed {
			d.Reasons = []string{"not_permitted"}
		}
		if i%5 == 0 {
			req.Action.Name = "make_payment"
			req.Context["on_behalf_of"] = map[string]any{"type": "user", "id": fmt.Sprintf("u%d", (i+1)%1000)}
			d.Delegation = &pdp.DelegationProof{OnBehalfOf: pdp.ObjectRef{Type: "user", ID: fmt.Sprintf("u%d", (i+1)%1000)}, Status: "active", Chain: []string{"poa-" + cust}}
		}
		body, err := json.Marshal(recorder.DecisionBody{Decision: d, Request: req, Instance: "bench", Build: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, trail.Record{Kind: recorder.KindDecision, ID: id, Time: at, Body: body})
		if i == n/2 {
			mid = id
		}
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := l.Append(context.Background(), batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if _, err := l.Checkpoint(); err != nil {
		b.Fatal(err)
	}
	return l, vkey, mid
}

// BenchmarkConsolePages times the console's pages, rendered, on a trail of
// 100,000 decisions (the index built once, as at start):
//
//	go test ./pdp/console -run '^$' -bench BenchmarkConsolePages -benchtime 20x
func BenchmarkConsolePages(b *testing.B) {
	l, vkey, mid := benchTrail(b, 100_000)
	svc := audit.Service{Trail: l, Index: audit.NewIndex()}
	started := time.Now()
	if err := svc.Index.Sync(context.Background(), l); err != nil {
		b.Fatal(err)
	}
	b.Logf("index of %d records built in %s", l.Size(), time.Since(started).Round(time.Millisecond))
	indexed, err := New(Config{}, Deps{Auditor: svc, Trail: l, VerifierKey: vkey})
	if err != nil {
		b.Fatal(err)
	}
	// The same pages without the index: every lookup scans the trail.
	scanning, err := New(Config{}, Deps{Auditor: audit.Service{Trail: l}, Trail: l, VerifierKey: vkey})
	if err != nil {
		b.Fatal(err)
	}
	for _, page := range []struct {
		name, path string
		c          *Console
	}{
		{"decisions", "/console/decisions", indexed},
		{"decisions-filtered", "/console/decisions?subject=user:u42&result=deny", indexed},
		{"decisions-page-40", "/console/decisions?before=2000", indexed},
		{"decision", "/console/decisions/" + mid, indexed},
		{"trail", "/console/trail", indexed},
		{"scan/decisions-filtered", "/console/decisions?subject=user:u42&result=deny", scanning},
		{"scan/decision", "/console/decisions/" + mid, scanning},
		{"scan/trail", "/console/trail", scanning},
	} {
		c := page.c
		token, _ := c.sessions.create("bench")
		b.Run(page.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, page.path, nil)
				req.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
				rec := httptest.NewRecorder()
				c.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", page.path, rec.Code, rec.Body)
				}
			}
		})
	}
}
