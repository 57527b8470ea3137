package policytest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/relations"
	"github.com/ciampdp/pdp/pdp/revalidation"
	"github.com/ciampdp/pdp/pdp/sources"
)

// NewEngine builds the engine a suite runs against, with the facts the
// suite declares and nothing else. A bundle with a SpiceDB schema gets a
// fresh embedded SpiceDB (memory datastore) holding that schema and the
// suite's relationships, so that suites cannot see each other's facts; the
// suite's delegation records get a fresh file store in a temporary folder,
// projected into that SpiceDB; the suite's `now` fixes the clock. close
// releases all of it.
func NewEngine(ctx context.Context, b *policy.Bundle, s Suite) (engine *pdp.Engine, close func(), err error) {
	comp := pdp.Components{Bundles: b}
	if !s.Now.IsZero() {
		now := s.Now
		comp.Now = func() time.Time { return now }
	}
	hasDelegations := len(s.Delegations) > 0 || s.DelegationsFile != ""
	if (len(s.Signals) > 0 || s.SignalsFile != "") && b.Signals() == nil {
		return nil, nil, fmt.Errorf("%s: the suite lists signals but the bundle has no signals registry (schema/signals.yaml)", s.File)
	}
	if (len(s.Consents) > 0 || s.ConsentsFile != "") && b.Purposes() == nil {
		return nil, nil, fmt.Errorf("%s: the suite lists consents but the bundle has no purposes registry (schema/purposes.yaml)", s.File)
	}
	if strings.TrimSpace(b.SpiceDBSchema()) == "" {
		if len(s.Relationships) > 0 || hasDelegations {
			return nil, nil, fmt.Errorf("%s: the suite lists relationships or delegations but the bundle has no SpiceDB schema (schema/*.zed)", s.File)
		}
		return pdp.NewEngine(comp), func() {}, nil
	}
	store, err := relations.Open(ctx, relations.Config{Engine: relations.EngineMemory, CacheSize: -1}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, fmt.Errorf("start SpiceDB for %s: %w", s.File, err)
	}
	closers := []func(){func() { _ = store.Close() }}
	done := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			done()
		}
	}()
	if _, err := store.WriteSchema(ctx, b.SpiceDBSchema()); err != nil {
		return nil, nil, fmt.Errorf("SpiceDB schema: %w", err)
	}
	ups := make([]relations.Update, 0, len(s.Relationships))
	for _, text := range s.Relationships {
		rel, err := relations.ParseRelationship(text)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", s.File, err)
		}
		ups = append(ups, relations.Update{Op: relations.OpTouch, Rel: rel})
	}
	if len(ups) > 0 {
		if _, err := store.WriteRelationships(ctx, ups); err != nil {
			return nil, nil, fmt.Errorf("%s: write relationships: %w", s.File, err)
		}
	}
	comp.Facts = sources.Facts{Store: store}
	var svc *delegation.Service
	if pdp.DeclaresDelegation(b) || hasDelegations {
		var closeRecords func()
		svc, closeRecords, err = suiteDelegations(ctx, b, s, store, comp.Now)
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, closeRecords)
		comp.Delegations = sources.Delegations{Service: svc}
	}
	if b.Purposes() != nil {
		ledger, closeLedger, err := suiteConsents(ctx, b, s, svc, comp.Now)
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, closeLedger)
		comp.Consent = sources.Consent{Ledger: ledger}
		if b.Dormancy() != nil {
			dorm, closeDormancy, err := suiteDormancy(ctx, ledger, svc, comp.Now)
			if err != nil {
				return nil, nil, err
			}
			closers = append(closers, closeDormancy)
			comp.Dormancy = dorm
		}
	}
	if b.Signals() != nil {
		ledger, closeSignals, err := suiteSignals(ctx, b, s)
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, closeSignals)
		comp.Signals, comp.Velocity = ledger, &pdp.Velocity{}
	}
	return pdp.NewEngine(comp), done, nil
}

// suiteDelegations stores a suite's delegation records in a fresh file
// store and projects them into the suite's SpiceDB.
func suiteDelegations(ctx context.Context, b *policy.Bundle, s Suite, store *relations.Store, now func() time.Time) (*delegation.Service, func(), error) {
	raw := s.Delegations
	if s.DelegationsFile != "" {
		var err error
		if raw, err = os.ReadFile(s.DelegationsFile); err != nil {
			return nil, nil, fmt.Errorf("%s: delegations: %w", s.File, err)
		}
	}
	var ds []delegation.Delegation
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ds); err != nil {
			return nil, nil, fmt.Errorf("%s: delegations: %w", s.File, err)
		}
	}
	dir, err := os.MkdirTemp("", "pdp-test-delegations-")
	if err != nil {
		return nil, nil, err
	}
	st, err := delegation.OpenFile(filepath.Join(dir, "delegations.jsonl"))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	done := func() { _ = st.Close(); _ = os.RemoveAll(dir) }
	if now == nil {
		now = time.Now
	}
	svc := delegation.NewService(delegation.Config{Store: st, Now: now,
		Projector: delegation.NewSpiceDBProjector(store, sources.KnownRelations(b), now)})
	if err := svc.Import(ctx, ds); err != nil {
		done()
		return nil, nil, fmt.Errorf("%s: delegations: %w", s.File, err)
	}
	return svc, done, nil
}

// suiteConsents gives a suite a fresh consent ledger in a temporary
// folder, with the bundle's purposes registry and the suite's seed.
func suiteConsents(ctx context.Context, b *policy.Bundle, s Suite, delegations *delegation.Service, now func() time.Time) (*consent.Ledger, func(), error) {
	raw := s.Consents
	if s.ConsentsFile != "" {
		var err error
		if raw, err = os.ReadFile(s.ConsentsFile); err != nil {
			return nil, nil, fmt.Errorf("%s: consents: %w", s.File, err)
		}
	}
	var seed consent.Seed
	if len(raw) > 0 {
		var err error
		if seed, err = consent.DecodeSeed(bytes.NewReader(raw)); err != nil {
			return nil, nil, fmt.Errorf("%s: consents: %w", s.File, err)
		}
	}
	dir, err := os.MkdirTemp("", "pdp-test-consent-")
	if err != nil {
		return nil, nil, err
	}
	st, err := consent.OpenFile(filepath.Join(dir, "consent.jsonl"))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	if now == nil {
		now = time.Now
	}
	cfg := consent.LedgerConfig{Store: st, Registry: b.Purposes, Now: now, Controller: "policy tests",
		SigningKey: testSigningKey}
	if delegations != nil {
		cfg.Delegations = sources.Representatives{Service: delegations}
	}
	ledger, err := consent.NewLedger(cfg)
	if err != nil {
		_ = st.Close()
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	done := func() { _ = ledger.Close(); _ = st.Close(); _ = os.RemoveAll(dir) }
	if err := ledger.ImportSeed(ctx, seed); err != nil {
		done()
		return nil, nil, fmt.Errorf("%s: consents: %w", s.File, err)
	}
	return ledger, done, nil
}

// testSigningKey signs the receipts of policy-test ledgers (never
// verified; a fixed key keeps the ledger from warning about an ephemeral
// one).
var testSigningKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

// suiteDormancy gives a suite's dormancy guard the suite's consent ledger
// (its activity, seeded by the suite's consents) and an empty
// revalidations file in a temporary folder.
func suiteDormancy(ctx context.Context, ledger *consent.Ledger, delegations *delegation.Service, now func() time.Time) (*revalidation.Service, func(), error) {
	dir, err := os.MkdirTemp("", "pdp-test-dormancy-")
	if err != nil {
		return nil, nil, err
	}
	st, err := revalidation.OpenFile(filepath.Join(dir, "revalidations.jsonl"), slog.New(slog.DiscardHandler))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	done := func() { _ = st.Close(); _ = os.RemoveAll(dir) }
	cfg := revalidation.Config{Store: st, Activity: revalidation.LedgerActivity{Ledger: ledger}, Now: now}
	if delegations != nil {
		cfg.Delegations = delegations
	}
	svc, err := revalidation.NewService(ctx, cfg)
	if err != nil {
		done()
		return nil, nil, err
	}
	return svc, done, nil
}
