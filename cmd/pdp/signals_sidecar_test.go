package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestSignalReachesSidecar: a signal pushed to the PDP invalidates the
// sidecar's cached answers like a delegation change (the change feed): the
// very next call through the sidecar after the push returned sees it.
func TestSignalReachesSidecar(t *testing.T) {
	s := startNorthbankSignals(t)
	sc := startSidecar(t, s.URL, "demo-key-mobile-banking", filepath.Join(t.TempDir(), "spool"), nil)
	ask := func() sidecarAnswer {
		t.Helper()
		code, data, err := postJSON(sc, "/access/v1/evaluation", "demo-key-mobile-banking", bobPays)
		var a sidecarAnswer
		if err != nil || code != http.StatusOK || json.Unmarshal(data, &a) != nil {
			t.Fatalf("sidecar: %d %s %v", code, data, err)
		}
		return a
	}
	if a := ask(); !a.Decision {
		t.Fatalf("bob's payment denied before any signal: %v", a.Context.Reasons)
	}
	if a := ask(); !a.Decision || a.Context.CachedFrom == "" {
		t.Fatalf("the second answer is not the cached allow: %+v", a)
	}
	s.push(t, "credential-compromise", "bob")
	pushed := time.Now()
	a := ask()
	took := time.Since(pushed)
	if a.Decision || !slices.Equal(a.Context.Reasons, []string{"account_compromised"}) || a.Context.CachedFrom != "" {
		t.Fatalf("after the push the sidecar answered %+v", a)
	}
	t.Logf("from the push returning to the sidecar's next answer reflecting it: %s", took)
}
