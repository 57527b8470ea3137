package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/ciampdp/pdp/pdp/adminlog"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
)

// repairHint tells the operator what to do when the start-up check fails.
const repairHint = "the PDP refuses to start rather than decide on state older than what it acknowledged: " +
	"run 'pdp repair' with the same configuration to apply these changes from the decision trail, then start it again"

// checkStores compares the delegation records and the consent ledger with
// the changes the decision trail holds (write-ahead records): a change the
// trail holds and a store lacks (a store file cut or restored from an old
// backup) stops the start, naming every such change.
func checkStores(ctx context.Context, tr adminlog.Trail, dsvc *delegation.Service, ledger *consent.Ledger, log *slog.Logger) error {
	var (
		ds adminlog.Delegations
		es adminlog.Events
	)
	if dsvc != nil {
		ds = dsvc
	}
	if ledger != nil {
		es = ledger
	}
	if ds == nil && es == nil {
		return nil
	}
	started := time.Now()
	rep, err := adminlog.Check(ctx, tr, ds, es)
	if err != nil {
		return fmt.Errorf("compare the delegation records and the consent ledger with the decision trail: %w", err)
	}
	if rep.Unreadable > 0 {
		log.Warn("change records of the decision trail that cannot be read (redacted?) were not checked against the stores", "records", rep.Unreadable)
	}
	for _, m := range rep.Missing {
		log.Error("an acknowledged change is missing from its store", "kind", m.Kind(), "id", m.ID(), "action", m.Action,
			"trail_seq", m.Seq, "store_has", m.Has)
	}
	if err := rep.Err(); err != nil {
		return fmt.Errorf("%w\n%s", err, repairHint)
	}
	log.Info("stores checked against the decision trail", "changes", rep.Changes, "trail_records", tr.Size(),
		"took", time.Since(started).Round(time.Millisecond))
	return nil
}

func repairCommand() *command {
	return &command{
		name: "repair",
		summary: "apply to the delegation records and the consent ledger the changes the decision trail holds and they lack " +
			"(the PDP must be stopped; --check only lists them)",
		flags: func(fs *pflag.FlagSet) {
			addAdminConfigFlags(fs)
			fs.Bool("check", false, "only list the missing changes (exit 1 when there are some)")
		},
		run: runRepair,
	}
}

// runRepair opens the trail (locked: the PDP must be stopped) and the
// stores, lists what the stores lack and applies it, then records the
// repair in the trail and checks again.
func runRepair(ctx context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
	if len(args) > 0 {
		return usagef("repair takes no arguments: %q", args)
	}
	cfg, _, warnings, err := loadConfigWarn(fs)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	if cfg.Trail.Mode == TrailOff {
		return errors.New("there is nothing to repair from: the decision trail is off (trail.mode: off)")
	}
	lc := cfg.Log
	if lv, _ := lc.level(); lv < slog.LevelWarn && !fs.Changed("log-level") {
		lc.Level = "warn"
	}
	log := newLogger(std.err, lc)
	warnDeprecated(log, warnings)
	tr, err := openTrail(ctx, cfg.Trail, nil, readBuild().Version, log)
	if err != nil {
		return fmt.Errorf("open the decision trail (is the PDP still running?): %w", err)
	}
	defer tr.close(log)

	var (
		ds  adminlog.DelegationStore
		cs  adminlog.ConsentStore
		dsR adminlog.Delegations
		csR adminlog.Events
	)
	if engine := storeEngine(cfg.Delegations.Engine, cfg.Delegations.Path); engine != "" {
		st, err := openDelegationStore(ctx, cfg.Delegations, engine, log)
		if err != nil {
			return err
		}
		defer st.Close()
		ds, dsR = st, st
	}
	if engine := storeEngine(cfg.Consent.Engine, cfg.Consent.Path); engine != "" {
		st, err := openConsentStore(ctx, cfg.Consent, engine, log)
		if err != nil {
			return err
		}
		defer st.Close()
		cs, csR = st, st
	}
	rep, err := adminlog.Check(ctx, tr.log, dsR, csR)
	if err != nil {
		return err
	}
	if rep.Unreadable > 0 {
		fmt.Fprintf(std.out, "note: %d change records could not be read (redacted?) and were not checked\n", rep.Unreadable)
	}
	if len(rep.Missing) == 0 {
		fmt.Fprintf(std.out, "the stores hold every change the decision trail holds (%d change records): nothing to repair\n", rep.Changes)
		return nil
	}
	fmt.Fprintf(std.out, "%d acknowledged changes are missing from the stores:\n", len(rep.Missing))
	for _, m := range rep.Missing {
		fmt.Fprintf(std.out, "  %s\n", m)
	}
	if check, _ := fs.GetBool("check"); check {
		return errReported
	}
	applied, rerr := adminlog.Repair(ctx, rep, ds, cs, tr.recorder)
	for _, m := range applied {
		fmt.Fprintf(std.out, "applied: %s %s (trail seq %d)\n", m.Kind(), m.ID(), m.Seq)
	}
	if rerr != nil {
		return rerr
	}
	after, err := adminlog.Check(ctx, tr.log, dsR, csR)
	if err != nil {
		return err
	}
	if err := after.Err(); err != nil {
		return fmt.Errorf("after the repair: %w", err)
	}
	fmt.Fprintf(std.out, "repaired: %d changes applied from the decision trail and the repair recorded in it; the PDP may start\n", len(applied))
	return nil
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
