package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

const northbank = "../../examples/northbank"

// northbankConfig is the Northbank example on a free loopback port, its
// stores and trail under dir.
func northbankConfig(dir string) Config {
	c := DefaultConfig()
	c.HTTP.Addr = "127.0.0.1:0"
	c.Policy.Dir = northbank
	c.Policy.ReloadInterval = 0
	c.Relations.Bootstrap = filepath.Join(northbank, "relationships.txt")
	c.Delegations.Path = filepath.Join(dir, "delegations.jsonl")
	c.Delegations.Seed = filepath.Join(northbank, "delegations.json")
	c.Consent.Path = filepath.Join(dir, "consent.jsonl")
	c.Consent.Seed = filepath.Join(northbank, "consents.json")
	c.Trail.Dir = filepath.Join(dir, "trail")
	c.Signals.Path = filepath.Join(dir, "signals.jsonl")
	c.Signals.AdminApplications = []string{"backoffice"}
	c.Signals.Transmitters = []TransmitterConfig{{Issuer: "https://risk.northbank.example/", Audience: []string{"https://pdp.northbank.example/"},
		JWKSFile: filepath.Join(northbank, "signals", "transmitter-jwks.json"), Algorithms: []string{"ES256"}, Delivery: "push"}}
	c.Signals.Outgoing = OutgoingSignalsConfig{Issuer: "https://pdp.northbank.example/", KeyFile: filepath.Join(northbank, "signals", "demo-only-pdp-transmitter-key.json")}
	return c
}

func quietOptions() Options {
	return Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test"}
}

// run serves s in the background; the returned function stops it and
// returns Run's error.
func run(t *testing.T, s *Server) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return within 10s of its context ending")
			return nil
		}
	}
}

// TestOpenRunServesAndReleases: Open binds and assembles the server, Run
// serves until its context ends, and after Run nothing stays held: the
// same stores and trail open again.
func TestOpenRunServesAndReleases(t *testing.T) {
	cfg := northbankConfig(t.TempDir())
	for round := range 2 {
		s, err := Open(t.Context(), cfg, quietOptions())
		if err != nil {
			t.Fatalf("round %d: open: %v", round, err)
		}
		stop := run(t, s)
		res, err := http.Get(s.URL() + "/readyz")
		if err != nil {
			t.Fatalf("round %d: readyz: %v", round, err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("round %d: readyz = %d, want 200", round, res.StatusCode)
		}
		if err := stop(); err != nil {
			t.Fatalf("round %d: run: %v", round, err)
		}
	}
}

// TestOpenFailureClosesWhatItOpened: when Open fails half-way (here at the
// trail, which another server holds) it closes what it had opened before,
// so the delegation and consent files it locked are free again.
func TestOpenFailureClosesWhatItOpened(t *testing.T) {
	first := northbankConfig(t.TempDir())
	s1, err := Open(t.Context(), first, quietOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()

	dir := t.TempDir()
	second := northbankConfig(dir)
	second.Trail.Dir = first.Trail.Dir // held by s1
	if _, err := Open(t.Context(), second, quietOptions()); !errors.Is(err, ErrTrailLocked) {
		t.Fatalf("open with a trail in use: %v, want %v", err, ErrTrailLocked)
	}
	third := northbankConfig(dir) // the same store files, a free trail
	s3, err := Open(t.Context(), third, quietOptions())
	if err != nil {
		t.Fatalf("the failed Open kept its stores open: %v", err)
	}
	s3.Close()
}

// TestOpenRejectsAnInvalidConfiguration: Open validates what it is given.
func TestOpenRejectsAnInvalidConfiguration(t *testing.T) {
	cfg := northbankConfig(t.TempDir())
	cfg.HTTP.Addr = "0.0.0.0:0" // no API keys: loopback only
	if _, err := Open(t.Context(), cfg, quietOptions()); !errors.Is(err, ErrNotValidated) || !errors.Is(err, ErrInsecureAddr) {
		t.Fatalf("open: %v, want %v and %v", err, ErrNotValidated, ErrInsecureAddr)
	}
}
