package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/ciampdp/pdp/pdp/adminlog"
	"github.com/ciampdp/pdp/pdp/revalidation"
	"github.com/ciampdp/pdp/pdp/signalledger"
)

// stores are the Repairer's stores as adminlog reads them.
func (r *Repairer) stores() adminlog.Stores {
	st := adminlog.Stores{}
	if r.w.Delegations != nil {
		st.Delegations = r.w.Delegations
	}
	if r.w.Consent != nil {
		st.Events = r.w.Consent
	}
	if r.w.Signals != nil {
		st.Signals = r.w.Signals
	}
	if r.w.Revalidations != nil {
		st.Revalidations = r.w.Revalidations
	}
	return st
}

// openFacts opens the signal ledger's store and the revalidations' store
// where serve would open them.
func (r *Repairer) openFacts(ctx context.Context, cfg Config, log *slog.Logger) error {
	sc := autoSignals(cfg.Signals, cfg.Consent)
	if engine := repairSignalsEngine(sc); engine != "" {
		var (
			st  signalledger.Store
			err error
		)
		if engine == SignalsPostgres {
			st, err = signalledger.OpenPostgres(ctx, sc.PostgresURL)
		} else {
			st, err = signalledger.OpenFile(sc.Path, log)
		}
		if err != nil {
			return fmt.Errorf("open the signal ledger (%s): %w", engine, err)
		}
		r.closers = append(r.closers, func() { _ = st.Close() })
		r.w.Signals = st
	}
	// The revalidations live where the consent ledger does (openDormancy).
	if storeEngine(cfg.Consent.Engine, cfg.Consent.Path) == "" {
		return nil
	}
	var (
		st  revalidation.Store
		err error
	)
	if cfg.Consent.Engine == ConsentPostgres {
		st, err = revalidation.OpenPostgres(ctx, cfg.Consent.PostgresURL)
	} else {
		path := cfg.Dormancy.Path
		if path == "" {
			path = filepath.Join(filepath.Dir(cfg.Consent.Path), "revalidations.jsonl")
		}
		st, err = revalidation.OpenFile(path, log)
	}
	if err != nil {
		return fmt.Errorf("open the revalidations: %w", err)
	}
	r.closers = append(r.closers, func() { _ = st.Close() })
	r.w.Revalidations = st
	return nil
}

// repairSignalsEngine is the signal ledger 'pdp repair' opens: the
// configured engine, with auto taken as serve takes it when transmitters
// are configured (PostgreSQL beside a PostgreSQL consent ledger, else the
// file); "" when off.
func repairSignalsEngine(sc SignalsConfig) string {
	switch sc.Engine {
	case SignalsOff:
		return ""
	case SignalsAuto:
		if len(sc.Transmitters) == 0 {
			return ""
		}
		if sc.PostgresURL != "" {
			return SignalsPostgres
		}
		return SignalsFile
	}
	return sc.Engine
}
