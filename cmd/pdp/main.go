// Command pdp is the policy decision point for customer identity: it serves
// the AuthZEN API over Cedar policies (serve), checks a policy bundle
// (validate), runs its test suites (test), and prints its build (version)
// and API-key digests for its configuration (hash-key). main is wiring only.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/google/uuid"
	"github.com/spf13/pflag"
)

// Exit codes of run.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed: bad config, policies that do not load, failing tests
	exitUsage   = 2 // the command line is wrong: unknown command, bad flag or argument
)

func main() {
	// Decision ids are UUIDv7: draw their randomness from a buffered pool
	// instead of one getrandom call per decision. It sets a package global,
	// so it happens here, before any goroutine can make an id.
	uuid.EnableRandPool()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// stdio is where a command reads and writes.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// command is one subcommand: its flags, its usage and what it does.
type command struct {
	name    string
	args    string // the positional part of the usage line
	summary string
	// flags adds the command's flags to fs.
	flags func(fs *pflag.FlagSet)
	run   func(ctx context.Context, io stdio, fs *pflag.FlagSet, args []string) error
}

func commands() map[string]*command {
	cs := []*command{serveCommand(), validateCommand(), testCommand(), versionCommand(), hashKeyCommand(), relationsCommand(), migrateCommand(), delegationCommand(), consentCommand(), dormancyCommand(), signalsCommand(), logCommand(), explainCommand(), auditCommand(), replayCommand(), sidecarCommand(), repairCommand()}
	m := make(map[string]*command, len(cs))
	for _, c := range cs {
		m[c.name] = c
	}
	return m
}

// usageError is an error in the command line; run exits with exitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errReported means the command has already said why it failed (on stdout);
// run exits with exitFailure and prints nothing more.
var errReported = errors.New("failure already reported")

// run is the whole program: it dispatches args to a subcommand and turns its
// error into an exit code. Errors become exit codes here and nowhere else.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 {
		writeUsage(stderr, cmds)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help", "help":
		if len(rest) > 0 {
			if c, ok := cmds[rest[0]]; ok {
				writeCommandUsage(stdout, c, newFlagSet(c))
				return exitOK
			}
		}
		writeUsage(stdout, cmds)
		return exitOK
	}
	c, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "pdp: unknown command %q\n\n", name)
		writeUsage(stderr, cmds)
		return exitUsage
	}
	fs := newFlagSet(c)
	err := fs.Parse(rest)
	switch {
	case err == nil:
		err = c.run(ctx, stdio{in: stdin, out: stdout, err: stderr}, fs, fs.Args())
	case !errors.Is(err, pflag.ErrHelp):
		// pflag's parse errors are untyped: all are command-line mistakes.
		err = &usageError{msg: err.Error()}
	}
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, pflag.ErrHelp):
		writeCommandUsage(stdout, c, fs)
		return exitOK
	case errors.Is(err, errReported):
		return exitFailure
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "pdp %s: %v\n\n", c.name, err)
		writeCommandUsage(stderr, c, fs)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "pdp %s: %v\n", c.name, err)
		return exitFailure
	}
}

func newFlagSet(c *command) *pflag.FlagSet {
	fs := pflag.NewFlagSet("pdp "+c.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints usage and errors itself
	fs.Usage = func() {}
	fs.SortFlags = false
	if c.flags != nil {
		c.flags(fs)
	}
	return fs
}

func writeUsage(w io.Writer, cmds map[string]*command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return order(names[i]) < order(names[j]) })
	fmt.Fprint(w, "pdp is a policy decision point for customer identity: Cedar policies behind the AuthZEN 1.0 API.\n\n")
	fmt.Fprint(w, "Usage:\n  pdp <command> [flags] [arguments]\n\nCommands:\n")
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, cmds[n].summary)
	}
	fmt.Fprint(w, "\nRun 'pdp <command> -h' for a command's flags. Exit status: 0 success, 1 failure, 2 usage error.\n")
}

// order lists the commands in the order a newcomer needs them.
func order(name string) int {
	for i, n := range []string{"serve", "validate", "test", "relations", "migrate", "delegation", "consent", "signals", "log", "explain", "audit", "replay", "sidecar", "hash-key", "version"} {
		if n == name {
			return i
		}
	}
	return 100
}

func writeCommandUsage(w io.Writer, c *command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "Usage: pdp %s", c.name)
	if fs.HasFlags() {
		fmt.Fprint(w, " [flags]")
	}
	if c.args != "" {
		fmt.Fprintf(w, " %s", c.args)
	}
	fmt.Fprintf(w, "\n\n%s\n", c.summary)
	if fs.HasFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
	}
}
