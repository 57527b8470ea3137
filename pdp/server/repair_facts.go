package server

import (
	"context"
	"log/slog"
)

// openFacts opens the signal ledger's store and the revalidations' store
// where serve opens them (signalsEngine, openSignalStore and
// openRevalidationStore are serve's). 'pdp repair' does not load the
// bundle: it takes the signals registry as present (serve refuses to
// start with transmitters and no registry).
func (r *Repairer) openFacts(ctx context.Context, cfg Config, log *slog.Logger) error {
	sc := autoSignals(cfg.Signals, cfg.Consent)
	if engine := signalsEngine(sc, true); engine != SignalsOff {
		st, err := openSignalStore(ctx, sc, engine, log)
		if err != nil {
			return err
		}
		r.closers = append(r.closers, func() { _ = st.Close() })
		r.w.Signals = st
	}
	// The revalidations live where the consent ledger does; none when
	// it is off or absent.
	if storeEngine(cfg.Consent.Engine, cfg.Consent.Path) == "" {
		return nil
	}
	st, _, err := openRevalidationStore(ctx, cfg.Dormancy, cfg.Consent, log)
	if err != nil {
		return err
	}
	r.closers = append(r.closers, func() { _ = st.Close() })
	r.w.Revalidations = st
	return nil
}
