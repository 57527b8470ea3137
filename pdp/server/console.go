package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/console"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/policy"
)

// ErrConsoleSessionTTL: console.session_ttl is not positive.
var ErrConsoleSessionTTL = errors.New("console.session_ttl must be positive")

// ConsoleConfig is the auditor's web console under /console/.
type ConsoleConfig struct {
	// Enabled serves the console (it needs the decision trail).
	Enabled bool `mapstructure:"enabled"`
	// SessionTTL is how long a browser stays signed in.
	SessionTTL time.Duration `mapstructure:"session_ttl"`
}

// DefaultConsole serves the console, with sessions of 8h.
func DefaultConsole() ConsoleConfig {
	return ConsoleConfig{Enabled: true, SessionTTL: console.DefaultSessionTTL}
}

// Validate checks the session lifetime.
func (c ConsoleConfig) Validate() error {
	if c.SessionTTL <= 0 {
		return fmt.Errorf("%s: %w", c.SessionTTL, ErrConsoleSessionTTL)
	}
	return nil
}

// openConsole builds the console over the running trail, or returns nil
// when it is off or there is no trail to read.
func openConsole(cfg Config, tr *openedTrail, svc audit.Service, dsvc *delegation.Service, ledger *consent.Ledger, log *slog.Logger) (*console.Console, error) {
	if !cfg.Console.Enabled {
		return nil, nil
	}
	if tr == nil {
		log.Info("console off: it reads the decision trail, and trail.store is none")
		return nil, nil
	}
	deps := console.Deps{Auditor: svc, Recorder: tr.recorder, Trail: tr.log, VerifierKey: tr.verifier, Logger: log,
		// As 'pdp replay --policies': a folder, or a revision of the Git
		// repository in the working directory.
		Proposals: func(ctx context.Context, arg string) (*policy.Bundle, error) { return LoadProposed(ctx, arg, ".", ".") }}
	if dsvc != nil {
		deps.Delegations = dsvc
	}
	if ledger != nil {
		deps.Consents = ledger
	}
	return console.New(console.Config{AuditorKeys: cfg.Auth.Auditors(), APIKeys: cfg.Auth.Keys(), SessionTTL: cfg.Console.SessionTTL}, deps)
}

// buildIndex indexes the trail for the auditor's reads, once at start.
func buildIndex(ctx context.Context, svc audit.Service, log *slog.Logger) error {
	started := time.Now()
	if err := svc.Index.Sync(ctx, svc.Trail); err != nil {
		return fmt.Errorf("index the decision trail: %w", err)
	}
	log.Info("decision trail indexed for the auditor", "records", svc.Trail.Size(), "took", time.Since(started).Round(time.Millisecond))
	return nil
}
