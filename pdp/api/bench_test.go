package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchBody is a typical gateway request: properties and context included.
var benchBody = `{"subject":{"type":"user","id":"alice","properties":{"department":"Sales"}},` +
	`"action":{"name":"read","properties":{"method":"GET"}},` +
	`"resource":{"type":"record","id":"record-1","properties":{"status":"active","owner":"bob"}},` +
	`"context":{"time":"2024-10-26T01:22-07:00","ip":"192.168.1.1"}}`

// BenchmarkHandler measures the HTTP layer's own cost per request (no
// network): evaluation against the fake decider versus the noop baseline.
func BenchmarkHandler(b *testing.B) {
	srv, err := New(Config{EnableNoop: true, APIKeys: map[string]string{digest("tok"): "bench"}},
		Deps{Decider: &fakeDecider{}, Policies: loadedPolicies()})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	for _, path := range []string{NoopPath, evalPath} {
		b.Run(strings.TrimPrefix(path, "/access/v1/"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(benchBody))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer tok")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// BenchmarkHTTP measures throughput over real loopback HTTP with
// keep-alive connections, evaluation versus the noop baseline.
func BenchmarkHTTP(b *testing.B) {
	srv, err := New(Config{EnableNoop: true}, Deps{Decider: &fakeDecider{}, Policies: loadedPolicies()})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for _, path := range []string{NoopPath, evalPath} {
		b.Run(strings.TrimPrefix(path, "/access/v1/"), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := client.Post(hs.URL+path, "application/json", strings.NewReader(benchBody))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						b.Errorf("status %d", res.StatusCode)
						return
					}
				}
			})
		})
	}
}
