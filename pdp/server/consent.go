package server

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/sources"
)

// Engines of the consent ledger.
const (
	ConsentAuto     = "auto"
	ConsentFile     = "file"
	ConsentPostgres = "postgres"
	ConsentOff      = "off"
)

// ErrConsentEngine: consent.engine has an unknown value.
var ErrConsentEngine = errors.New("consent.engine must be auto, file, postgres or off")

// ConsentConfig selects where the consent ledger lives and how receipts
// are signed. "auto" (the default) keeps it in a local file when the
// bundle has a purposes registry (schema/purposes.yaml), and turns it off
// otherwise.
type ConsentConfig struct {
	Engine      string `mapstructure:"engine"`
	Path        string `mapstructure:"path"`
	PostgresURL string `mapstructure:"postgres_url"`
	// Seed is a JSON file {"events":[…], "activity":{"user:heidi":"…"}}
	// imported at start (events whose ids are absent).
	Seed string `mapstructure:"seed"`
	// SigningKeyFile is an Ed25519 private key (PKCS#8 PEM, as
	// `openssl genpkey -algorithm ed25519` writes) that signs consent
	// receipts; without one a key is made at start (receipts then verify
	// only while the process runs).
	SigningKeyFile string `mapstructure:"signing_key_file"`
	KeyID          string `mapstructure:"key_id"`
	Controller     string `mapstructure:"controller"`
	// AdminApplications read every consent of a data subject (state,
	// history, receipts); any other application reads only the grants it
	// is party to.
	AdminApplications []string `mapstructure:"admin_applications"`
}

// DefaultConsent is auto, with the file store in ./pdp-data.
func DefaultConsent() ConsentConfig {
	return ConsentConfig{Engine: ConsentAuto, Path: "pdp-data/consent.jsonl", KeyID: "pdp-receipts", Controller: "the bank"}
}

// Validate checks the section.
func (c ConsentConfig) Validate() error {
	switch c.Engine {
	case ConsentAuto, ConsentFile:
		if c.Path == "" {
			return errors.New("consent.path must not be empty for the file store")
		}
	case ConsentPostgres:
		if c.PostgresURL == "" {
			return errors.New("consent.postgres_url is required when consent.engine is postgres")
		}
	case ConsentOff:
	default:
		return fmt.Errorf("%q: %w", c.Engine, ErrConsentEngine)
	}
	return nil
}

// openConsent opens the consent ledger, or returns nil when it is off.
// Every change the ledger makes is recorded in journal first.
func openConsent(ctx context.Context, cfg ConsentConfig, reloader *policy.Reloader, delegations *delegation.Service, auth authority, journal consent.Journal, pub consent.Publisher, note consent.Notifier, log *slog.Logger) (*consent.Ledger, func(), error) {
	engine := cfg.Engine
	if engine == ConsentAuto {
		engine = ConsentOff
		if b := reloader.Current(); b != nil && b.Purposes() != nil {
			engine = ConsentFile
		}
	}
	if engine == ConsentOff {
		log.Info("consent ledger off (the bundle has no purposes registry, or consent.engine: off)")
		return nil, func() {}, nil
	}
	st, err := openConsentStore(ctx, cfg, engine, log)
	if err != nil {
		return nil, nil, err
	}
	key, err := readSigningKey(cfg.SigningKeyFile)
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	lc := consent.LedgerConfig{
		Store:      st,
		Publisher:  pub,
		Notifier:   note,
		Registry:   func() *consent.Registry { return reloader.Current().Purposes() },
		SigningKey: key, KeyID: cfg.KeyID, Controller: cfg.Controller,
		Logger: log, Journal: journal,
		Types: sources.Vocabulary{Bundles: reloader},
	}
	if delegations != nil {
		lc.Delegations = sources.Representatives{Service: delegations}
	}
	if auth.actors != nil {
		lc.Actors = auth.actors
	}
	ledger, err := consent.NewLedger(lc)
	if err != nil {
		_ = st.Close()
		return nil, nil, fmt.Errorf("open the consent ledger: %w", err)
	}
	closeFn := func() { _ = ledger.Close(); _ = st.Close() }
	if cfg.Seed != "" {
		if err := seedConsent(ctx, ledger, cfg.Seed); err != nil {
			closeFn()
			return nil, nil, err
		}
	}
	log.Info("consent ledger open", "engine", engine, "position", ledger.Head())
	return ledger, closeFn, nil
}

// openConsentStore opens the store of the engine (file or postgres); a
// torn last line of the file is cut and logged to log.
func openConsentStore(ctx context.Context, cfg ConsentConfig, engine string, log *slog.Logger) (consent.Store, error) {
	var (
		st  consent.Store
		err error
	)
	switch engine {
	case ConsentFile:
		st, err = consent.OpenFileWith(cfg.Path, consent.FileOptions{Logger: log})
	case ConsentPostgres:
		st, err = consent.OpenPostgres(ctx, cfg.PostgresURL)
	default:
		err = fmt.Errorf("%q: %w", engine, ErrConsentEngine)
	}
	if err != nil {
		return nil, fmt.Errorf("open the consent ledger (%s): %w", engine, err)
	}
	return st, nil
}

func seedConsent(ctx context.Context, ledger *consent.Ledger, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("consent.seed: %w", err)
	}
	defer f.Close()
	seed, err := consent.DecodeSeed(f)
	if err != nil {
		return fmt.Errorf("consent.seed %s: %w", path, err)
	}
	if err := ledger.ImportSeed(ctx, seed); err != nil {
		return fmt.Errorf("consent.seed %s: %w", path, err)
	}
	return nil
}

// readSigningKey reads an Ed25519 private key in PKCS#8 PEM; "" gives nil
// (the ledger then makes an ephemeral key and says so).
func readSigningKey(path string) (ed25519.PrivateKey, error) {
	if path == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("consent.signing_key_file: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("consent.signing_key_file %s: no PEM block (want a PKCS#8 Ed25519 key: openssl genpkey -algorithm ed25519)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("consent.signing_key_file %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("consent.signing_key_file %s: a %T, not an Ed25519 key", path, k)
	}
	return ek, nil
}
