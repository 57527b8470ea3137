package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentReportsTellTheSidecar, through the binary on the
// Northbank example (sync trail, whose group commit writes concurrent
// records together and lets their commits run in any order) with a
// sidecar that cached alice's plain allow to pay: three failed step-ups
// reported at once begin her hold, and the report that began it (its
// record counts 3) is answered only once the sidecar was told, even when
// its change was held back behind a report reserved before it: asked
// right after that answer, the sidecar does not serve the plain allow it
// cached. A reported success lifts the hold between rounds.
func TestConcurrentReportsTellTheSidecar(t *testing.T) {
	s := startNorthbank(t)
	const key = "demo-key-mobile-banking"
	sc := startSidecar(t, s.URL, key, filepath.Join(t.TempDir(), "spool"), nil)
	failed := stepUpReportBody(`{"outcome":"failed"}`)
	report := func(body string) sidecarAnswer {
		code, data, err := postJSON(s.URL, "/access/v1/evaluation", key, body)
		var a sidecarAnswer
		if err != nil || code != http.StatusOK || json.Unmarshal(data, &a) != nil || !a.Decision {
			t.Errorf("report: %d %s %v", code, data, err)
		}
		return a
	}
	for round := range 4 {
		askSidecar(t, sc, key, alicePays)
		if a := askSidecar(t, sc, key, alicePays); !a.Decision || len(a.Context.Obligations) != 0 || a.Context.CachedFrom == "" {
			t.Fatalf("round %d: the sidecar did not cache alice's plain allow: %+v", round, a)
		}
		type answered struct{ report, pay sidecarAnswer }
		got := make([]answered, 3)
		var wg sync.WaitGroup
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i].report = report(failed)
				got[i].pay = askSidecar(t, sc, key, alicePays) // right after this report's answer
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		began := 0
		for _, g := range got {
			words, _ := s.explain(t, g.report.Context.DecisionID)
			if !strings.Contains(words, "reported a failed step-up: 3 within") {
				continue
			}
			began++
			// (Cached is fine when it is the held answer another report's
			// goroutine had the sidecar cache after the hold was told.)
			if p := g.pay; !p.Decision || !slices.Equal(p.Context.Obligations, []string{"step_up_authentication"}) {
				t.Fatalf("round %d: right after the report that began the hold was answered, the sidecar answered %+v (cached from %q)", round, p, p.Context.CachedFrom)
			}
		}
		if began != 1 {
			t.Fatalf("round %d: %d reports counted 3, want 1", round, began)
		}
		report(stepUpReportBody(`{"outcome":"succeeded"}`))
		if a := askSidecar(t, sc, key, alicePays); !a.Decision || len(a.Context.Obligations) != 0 {
			t.Fatalf("round %d: after the success the sidecar answered %+v", round, a)
		}
	}
}
