package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/relations"
	"github.com/ciampdp/pdp/pdp/sources"
)

// Engines of the delegation records.
const (
	DelegationsAuto     = "auto"
	DelegationsFile     = "file"
	DelegationsPostgres = "postgres"
	DelegationsOff      = "off"
)

// ErrDelegationsEngine: delegations.engine has an unknown value.
var ErrDelegationsEngine = errors.New("delegations.engine must be auto, file, postgres or off")

// DelegationsConfig selects where delegation records live and who may
// administer them. "auto" (the default) keeps them in a local file when
// the bundle declares context.delegation on some action, and turns them off
// otherwise.
type DelegationsConfig struct {
	Engine      string `mapstructure:"engine"`
	Path        string `mapstructure:"path"`
	PostgresURL string `mapstructure:"postgres_url"`
	// Seed is a JSON file of delegation records (with their history)
	// imported at start when their ids are absent.
	Seed                 string   `mapstructure:"seed"`
	AdminApplications    []string `mapstructure:"admin_applications"`
	RegisterApplications []string `mapstructure:"register_applications"`
	// ReaderApplications read every delegation record (auditors, back
	// office) without administering them; any other administering
	// application reads only those it took part in (delegation.Reader).
	ReaderApplications []string `mapstructure:"reader_applications"`
}

// DefaultDelegations is auto, with the file store in ./pdp-data.
func DefaultDelegations() DelegationsConfig {
	return DelegationsConfig{Engine: DelegationsAuto, Path: "pdp-data/delegations.jsonl"}
}

// Validate checks the section.
func (d DelegationsConfig) Validate() error {
	switch d.Engine {
	case DelegationsAuto, DelegationsFile:
		if d.Path == "" {
			return errors.New("delegations.path must not be empty for the file store")
		}
	case DelegationsPostgres:
		if d.PostgresURL == "" {
			return errors.New("delegations.postgres_url is required when delegations.engine is postgres")
		}
	case DelegationsOff:
	default:
		return fmt.Errorf("%q: %w", d.Engine, ErrDelegationsEngine)
	}
	return nil
}

// openDelegations opens the delegation records and their service, which
// projects active delegations into the relationship store (when there is
// one), imports the seed and reconciles the projection. It returns nil
// when delegations are off.
// Every change the service makes is recorded in journal first, and
// published to pub (the sidecars' change feed) once stored.
func openDelegations(ctx context.Context, cfg DelegationsConfig, bundles pdp.BundleSource, store *relations.Store, auth authority, journal delegation.Journal, pub delegation.Publisher, note delegation.Notifier, log *slog.Logger) (*delegation.Service, func(), error) {
	engine := cfg.Engine
	if engine == DelegationsAuto {
		engine = DelegationsOff
		if b := bundles.Current(); b != nil && pdp.DeclaresDelegation(b) {
			engine = DelegationsFile
		}
	}
	if engine == DelegationsOff {
		log.Info("delegation records off (no action declares context.delegation, or delegations.engine: off)")
		return nil, func() {}, nil
	}
	st, err := openDelegationStore(ctx, cfg, engine, log)
	if err != nil {
		return nil, nil, err
	}
	var proj delegation.Projector
	if store != nil {
		proj = delegation.NewSpiceDBProjector(store, sources.KnownRelations(bundles), time.Now)
	}
	dc := delegation.Config{Store: st, Projector: proj, Logger: log, RegisterApplications: auth.registers, ReaderApplications: auth.readers, Journal: journal,
		Vocabulary: sources.Vocabulary{Bundles: bundles}, Publisher: pub, Notifier: note}
	if auth.actors != nil {
		dc.Actors = auth.actors
	}
	svc := delegation.NewService(dc)
	closeFn := func() { _ = st.Close() }
	if cfg.Seed != "" {
		if err := seedDelegations(ctx, svc, cfg.Seed); err != nil {
			closeFn()
			return nil, nil, err
		}
	}
	if proj != nil {
		n, err := svc.Reconcile(ctx)
		if err != nil {
			closeFn()
			return nil, nil, fmt.Errorf("project the delegation records into the relationship store: %w", err)
		}
		log.Info("delegation records open", "engine", engine, "records", n)
	} else {
		log.Warn("delegation records open without a relationship store: they are not projected into SpiceDB", "engine", engine)
	}
	return svc, closeFn, nil
}

// openDelegationStore opens the store of the engine (file or postgres); a
// torn last line of the file is cut and logged to log.
func openDelegationStore(ctx context.Context, cfg DelegationsConfig, engine string, log *slog.Logger) (delegation.Store, error) {
	var (
		st  delegation.Store
		err error
	)
	switch engine {
	case DelegationsFile:
		st, err = delegation.OpenFileWith(cfg.Path, delegation.FileOptions{Logger: log})
	case DelegationsPostgres:
		st, err = delegation.OpenPostgres(ctx, cfg.PostgresURL)
	default:
		err = fmt.Errorf("%q: %w", engine, ErrDelegationsEngine)
	}
	if err != nil {
		return nil, fmt.Errorf("open the delegation records (%s): %w", engine, err)
	}
	return st, nil
}

// seedDelegations imports a JSON array of delegation records.
func seedDelegations(ctx context.Context, svc *delegation.Service, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("delegations.seed: %w", err)
	}
	var ds []delegation.Delegation
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ds); err != nil {
		return fmt.Errorf("delegations.seed %s: %w", path, err)
	}
	if err := svc.Import(ctx, ds); err != nil {
		return fmt.Errorf("delegations.seed %s: %w", path, err)
	}
	return nil
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
