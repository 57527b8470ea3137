package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ciampdp/pdp/pdp/adminlog"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/revalidation"
)

// repairHint tells the operator what to do when the start-up check fails.
const repairHint = "the PDP refuses to start rather than decide on state older than what it acknowledged: " +
	"run 'pdp repair' with the same configuration to apply these changes from the decision trail, then start it again"

// servedStores are the stores serve opened (nil: off) as the start-up
// check reads them, each left a nil interface when off; 'pdp repair'
// checks adminlog.Writers.Stores of the same stores (openFacts opens them
// as serve does).
func servedStores(dsvc *delegation.Service, ledger *consent.Ledger, sigs *openedSignals, dorm *revalidation.Service) adminlog.Stores {
	var st adminlog.Stores
	if dsvc != nil {
		st.Delegations = dsvc
	}
	if ledger != nil {
		st.Events = ledger
	}
	if sigs != nil && sigs.ledger != nil {
		st.Signals = sigs.ledger
	}
	if dorm != nil {
		st.Revalidations = dorm
	}
	return st
}

// owedRevalidations is dorm as the store the start-up check makes owed
// revalidations in; a nil interface when dormancy is off.
func owedRevalidations(dorm *revalidation.Service) adminlog.RevalidationStore {
	if dorm == nil {
		return nil
	}
	return dorm
}

// checkStores compares the delegation records, the consent ledger, the
// signal ledger and the revalidations with the changes the decision trail
// holds (write-ahead records): a change the trail holds and a store lacks
// (a store file cut or restored from an old backup) stops the start,
// naming every such change. A revalidation that a stored SET's record
// implies and the store lacks (its write failed, or the replica stopped
// before it) does not when nothing else is missing: it is made now in
// dorm, recorded in the trail by rec (adminlog.MakeImplied), and logged;
// one it cannot make leaves the identity dormant (fail closed) until the
// next start or 'pdp repair'.
func checkStores(ctx context.Context, tr adminlog.Trail, st adminlog.Stores, dorm adminlog.RevalidationStore, rec adminlog.Recorder, log *slog.Logger) error {
	if st.Delegations == nil && st.Events == nil && st.Signals == nil && st.Revalidations == nil {
		return nil
	}
	started := time.Now()
	rep, err := adminlog.CheckStores(ctx, tr, st)
	if err != nil {
		return fmt.Errorf("compare the stores with the decision trail: %w", err)
	}
	if rep.Unreadable > 0 {
		log.Warn("change records of the decision trail that cannot be read (redacted?) were not checked against the stores", "records", rep.Unreadable)
	}
	// Owed revalidations are made only when nothing else is missing (a
	// start that refuses leaves them all to 'pdp repair').
	rest := rep
	if implied, others := rep.Implied(); dorm != nil && len(implied) > 0 && len(others.Missing) == 0 {
		makeImplied(ctx, implied, dorm, rec, log)
		rest = others
	}
	for _, m := range rest.Missing {
		log.Error("an acknowledged change is missing from its store", "kind", m.Kind(), "id", m.ID(), "action", m.Action,
			"trail_seq", m.Seq, "store_has", m.Has)
	}
	if err := rest.Err(); err != nil {
		return fmt.Errorf("%w\n%s", err, repairHint)
	}
	log.Info("stores checked against the decision trail", "changes", rep.Changes, "trail_records", tr.Size(),
		"took", time.Since(started).Round(time.Millisecond))
	return nil
}

// makeImplied makes the revalidations stored SETs imply and the store
// lacks, logging each at Warn; a failure is logged and leaves them owed.
func makeImplied(ctx context.Context, implied []adminlog.Missing, dorm adminlog.RevalidationStore, rec adminlog.Recorder, log *slog.Logger) {
	if len(implied) == 0 {
		return
	}
	for _, m := range implied {
		log.Warn("a stored signal's revalidation is missing: making it now", "id", m.ID(), "key", m.Revalidation.Key(),
			"source", m.Revalidation.Source, "trail_seq", m.Seq)
	}
	made, err := adminlog.MakeImplied(ctx, implied, dorm, rec)
	if err != nil {
		log.Error("stored signals' revalidations not all made (the identities stay dormant until the next start or 'pdp repair')",
			"made", len(made), "owed", len(implied), "error", err)
		return
	}
	log.Warn("stored signals' revalidations made at start", "made", len(made))
}

// Repairer holds what 'pdp repair' reads and writes: the trail and the
// stores: delegation records, consent ledger, signal ledger,
// revalidations. Every PDP using them must be stopped. A file trail is
// locked (a running PDP on this host holds the lock); a PostgreSQL trail
// is not: LiveReplicas names the replicas that still hold a lease in the
// shared change feed. A replica left running between its trail record
// and its store write would be answered "not applied" for a change the
// repair stored (or store what the repair already did).
type Repairer struct {
	tr      *openedTrail
	w       adminlog.Writers
	closers []func()
}

// OpenRepairer opens the trail of cfg and the stores it names; cfg is
// validated and its trail is on. When it fails half-way it closes what it
// had opened.
func OpenRepairer(ctx context.Context, cfg Config, version string, log *slog.Logger) (_ *Repairer, err error) {
	tr, err := openTrail(ctx, cfg.Trail, nil, version, log)
	if err != nil {
		return nil, fmt.Errorf("open the decision trail (is the PDP still running?): %w", err)
	}
	r := &Repairer{tr: tr, closers: []func(){func() { tr.close(log) }}}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if engine := storeEngine(cfg.Delegations.Engine, cfg.Delegations.Path); engine != "" {
		st, err := openDelegationStore(ctx, cfg.Delegations, engine, log)
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, func() { _ = st.Close() })
		r.w.Delegations = st
	}
	if engine := storeEngine(cfg.Consent.Engine, cfg.Consent.Path); engine != "" {
		st, err := openConsentStore(ctx, cfg.Consent, engine, log)
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, func() { _ = st.Close() })
		r.w.Consent = st
	}
	if err := r.openFacts(ctx, cfg, log); err != nil {
		return nil, err
	}
	return r, nil
}

// Check lists the changes the trail holds and the stores lack.
func (r *Repairer) Check(ctx context.Context) (adminlog.Report, error) {
	return adminlog.CheckStores(ctx, r.tr.log, r.w.Stores())
}

// Repair applies the missing changes of rep to the stores and records the
// repair in the trail.
func (r *Repairer) Repair(ctx context.Context, rep adminlog.Report) ([]adminlog.Missing, error) {
	return adminlog.RepairStores(ctx, rep, r.w, r.tr.recorder)
}

// Close closes the stores, then the trail, in reverse order of opening.
func (r *Repairer) Close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	r.closers = nil
}

// storeEngine is the store 'pdp repair' opens for a section: its engine,
// with auto taken as the file when the file exists ("" when off or absent).
func storeEngine(engine, path string) string {
	switch engine {
	case DelegationsOff: // ConsentOff is the same word
		return ""
	case DelegationsAuto:
		if _, err := os.Stat(path); err != nil {
			return ""
		}
		return DelegationsFile
	}
	return engine
}

// LiveReplicas names the PDP replicas that hold a live lease in the
// shared change feed (pdp_replicas, lease_until after the database's
// now), each with the end of its lease: 'pdp repair' refuses to run
// while there are some. None when no store is on PostgreSQL (no shared
// feed) or no replica ever registered. A stopped replica's lease ends at
// once, or when the last lease it granted a sidecar does; a killed one's
// within the replica lease.
func LiveReplicas(ctx context.Context, cfg Config) ([]string, error) {
	url := SharedFeedURL(cfg)
	if url == "" {
		return nil, nil
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("read the replicas' leases: %w", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT id, lease_until FROM pdp_replicas WHERE lease_until > now() ORDER BY id")
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table: no replica ever ran
			return nil, nil
		}
		return nil, fmt.Errorf("read the replicas' leases: %w", err)
	}
	live, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var (
			id    string
			until time.Time
		)
		if err := row.Scan(&id, &until); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s (lease until %s)", id, until.UTC().Format(time.RFC3339)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the replicas' leases: %w", err)
	}
	return live, nil
}
