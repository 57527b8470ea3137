package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ciampdp/pdp/pdp/bundlecheck"
	"github.com/ciampdp/pdp/pdp/policy"
	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

func validateCommand() *command {
	return &command{
		name:    "validate",
		args:    "[dir]",
		summary: "load a policy bundle (dir/policies + dir/schema, default .) exactly as serve would, and report every problem",
		run:     runValidate,
	}
}

func runValidate(ctx context.Context, std stdio, _ *pflag.FlagSet, args []string) error {
	dir, err := bundleArg(args)
	if err != nil {
		return err
	}
	b, err := loadBundle(ctx, std.out, dir)
	if err != nil {
		return err
	}
	problems, err := bundlecheck.Check(b)
	if err != nil {
		fmt.Fprintln(std.out, err)
		fmt.Fprintf(std.out, "invalid: %s has 1 problem\n", b.Dirs())
		return errReported
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(std.out, p)
		}
		fmt.Fprintf(std.out, "invalid: %s has %d %s\n", b.Dirs(), len(problems), plural(len(problems), "problem", "problems"))
		return errReported
	}
	writeSummary(std.out, b)
	return nil
}

// bundleArg is the optional bundle root argument.
func bundleArg(args []string) (string, error) {
	switch len(args) {
	case 0:
		return ".", nil
	case 1:
		if !isDir(args[0]) {
			return "", usagef("%s is not a folder", args[0])
		}
		return args[0], nil
	default:
		return "", usagef("expected at most one folder, got %d arguments", len(args))
	}
}

// loadBundle loads the bundle rooted at dir. When it does not load because
// of its content, every problem is written to w as
// `file:line: policy "id": message`, one per line, and errReported is
// returned.
func loadBundle(ctx context.Context, w io.Writer, dir string) (*policy.Bundle, error) {
	dirs := policy.DirsFor(dir)
	b, err := policy.Load(ctx, dirs)
	if err == nil {
		return b, nil
	}
	var les policy.LoadErrors
	if !errors.As(pdpserver.Locate(dirs, err), &les) {
		return nil, fmt.Errorf("load %s: %w", dirs, err)
	}
	for _, le := range les {
		fmt.Fprintln(w, le)
	}
	fmt.Fprintf(w, "invalid: %s has %d %s\n", dirs, len(les), plural(len(les), "problem", "problems"))
	return nil, errReported
}

// writeSummary prints what a valid bundle holds.
func writeSummary(w io.Writer, b *policy.Bundle) {
	var policyFiles, schemaFiles int
	for _, f := range b.Files() {
		if strings.HasPrefix(f, "schema/") {
			schemaFiles++
		} else if strings.HasSuffix(f, ".cedar") {
			policyFiles++
		}
	}
	s := b.Schema()
	commit := b.Version().Commit
	if commit == "" {
		commit = "none (not in a Git work tree)"
	}
	fmt.Fprintf(w, "valid: %s\n", b.Dirs())
	fmt.Fprintf(w, "version:  %s\n", b.Version().Hash)
	fmt.Fprintf(w, "commit:   %s\n", commit)
	fmt.Fprintf(w, "policies: %d in %d %s\n", len(b.Policies()), policyFiles, plural(policyFiles, "file", "files"))
	fmt.Fprintf(w, "schema:   %d entity types, %d actions in %d %s\n",
		len(s.Entities)+len(s.Enums), len(s.Actions), schemaFiles, plural(schemaFiles, "file", "files"))
	fmt.Fprintf(w, "entities: %d\n", len(b.Entities())-len(s.Actions))
	if reg := b.Purposes(); reg != nil {
		fmt.Fprintf(w, "purposes: %d (registry version %s)\n", len(reg.Purposes), reg.Version)
	}
	if reg := b.Signals(); reg != nil {
		fmt.Fprintf(w, "signals:  %d event rules, %d velocity rules, %d failed step-up rules (registry version %s)\n", len(reg.Rules), len(reg.Velocity), len(reg.StepUps), reg.Version)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
