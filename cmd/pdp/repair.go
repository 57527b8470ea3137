package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

func repairCommand() *command {
	return &command{
		name: "repair",
		summary: "apply to the delegation records, the consent ledger, the signal ledger and the revalidations the changes the decision trail holds and they lack " +
			"(every PDP replica using them must be stopped: when the change feed is shared (delegations, consent, trail or relations on PostgreSQL), refused while a replica holds a lease in it; --check only lists them)",
		flags: func(fs *pflag.FlagSet) {
			addAdminConfigFlags(fs)
			fs.Bool("check", false, "only list the missing changes (exit 1 when there are some)")
			fs.Bool("force", false, "repair although replicas hold a live lease in the shared change feed (pdp_replicas): only when they are known to be stopped")
		},
		run: runRepair,
	}
}

// runRepair opens the trail and the stores, lists what the stores lack
// and applies it, then records the repair in the trail and checks again.
// Every replica must be stopped: a file trail is locked by a running PDP
// on this host, but a PostgreSQL trail is not, so the repair (not
// --check) refuses while a replica holds a live lease in the shared change
// feed, unless --force. A replica left running between its trail record
// and its store write would be answered "not applied" for a change the
// repair stored.
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
	if cfg.Trail.Mode == pdpserver.TrailOff {
		return errors.New("there is nothing to repair from: the decision trail is off (trail.mode: off)")
	}
	lc := cfg.Log
	if lv, _ := lc.SlogLevel(); lv < slog.LevelWarn && !fs.Changed("log-level") {
		lc.Level = "warn"
	}
	log := newLogger(std.err, lc)
	warnDeprecated(log, warnings)
	check, _ := fs.GetBool("check")
	if force, _ := fs.GetBool("force"); !check && !force {
		live, err := pdpserver.LiveReplicas(ctx, cfg)
		if err != nil {
			return err
		}
		if len(live) > 0 {
			return fmt.Errorf("%d PDP replicas hold a live lease in the shared change feed (pdp_replicas): %s; "+
				"stop every replica first (one left running between its trail record and its store write would be answered "+
				"\"not applied\" for a change the repair stores), wait until the leases end, or pass --force if they are known to be stopped",
				len(live), strings.Join(live, ", "))
		}
	}
	rp, err := pdpserver.OpenRepairer(ctx, cfg, readBuild().Version, log)
	if err != nil {
		return err
	}
	defer rp.Close()
	rep, err := rp.Check(ctx)
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
	if check {
		return errReported
	}
	applied, rerr := rp.Repair(ctx, rep)
	for _, m := range applied {
		fmt.Fprintf(std.out, "applied: %s %s (trail seq %d)\n", m.Kind(), m.ID(), m.Seq)
	}
	if rerr != nil {
		return rerr
	}
	after, err := rp.Check(ctx)
	if err != nil {
		return err
	}
	if err := after.Err(); err != nil {
		return fmt.Errorf("after the repair: %w", err)
	}
	fmt.Fprintf(std.out, "repaired: %d changes applied from the decision trail and the repair recorded in it; the PDP may start\n", len(applied))
	return nil
}
