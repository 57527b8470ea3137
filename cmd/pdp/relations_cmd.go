package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ciampdp/pdp/pdp/changefeed/pgfeed"
	"github.com/ciampdp/pdp/pdp/relations"
	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// The administration commands below work on the relationship store of a
// configuration (relations.*), outside the serving process.

func relationsCommand() *command {
	return &command{
		name:    "relations",
		args:    "import [FILE|-]",
		summary: "import relationships (SpiceDB text form, one per line; stdin without FILE) into the configured PostgreSQL or remote SpiceDB",
		flags: func(fs *pflag.FlagSet) {
			fs.Int("batch", relations.DefaultImportBatch, "relationships per bulk-import message")
			fs.Int("per-transaction", defaultPerTransaction, "relationships per transaction (a transaction also commits after 20s); 0 imports everything in one, which SpiceDB cuts off after its streaming timeout (30s by default)")
			fs.Int("skip", 0, "skip the first N relationships of the input: to resume an import that failed after committing N")
			fs.String("schema", "", "a SpiceDB schema (.zed) to write before the import")
			fs.Duration("progress", 5*time.Second, "interval of the progress lines on stderr when it is not a terminal (a terminal gets one line, rewritten); 0 turns them off")
			addAdminConfigFlags(fs)
		},
		run: runRelations,
	}
}

func migrateCommand() *command {
	return &command{
		name:    "migrate",
		summary: "bring the SpiceDB tables of relations.postgres_url to the newest version (relations.engine postgres)",
		flags:   addAdminConfigFlags,
		run:     runMigrate,
	}
}

// addAdminConfigFlags adds the configuration flags of serve; the ones that
// only concern the HTTP server and the bundle are hidden (they are still
// read, so one configuration serves every command).
func addAdminConfigFlags(fs *pflag.FlagSet) {
	addConfigFlags(fs)
	for _, name := range []string{"addr", "dir", "reload-interval", "git-remote"} {
		_ = fs.MarkHidden(name)
	}
}

// adminConfig loads the configuration and checks what the administration
// commands use of it: the relations and log sections.
func adminConfig(fs *pflag.FlagSet, w io.Writer) (pdpserver.Config, *slog.Logger, error) {
	cfg, _, warnings, err := loadConfigWarn(fs)
	if err != nil {
		return pdpserver.Config{}, nil, err
	}
	if err := cfg.Log.Validate(); err != nil {
		return pdpserver.Config{}, nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if cfg.Relations.Engine != pdpserver.EngineNone {
		if err := cfg.Relations.Validate(); err != nil {
			return pdpserver.Config{}, nil, fmt.Errorf("invalid configuration: %w", err)
		}
	}
	// The store's routine info lines would only repeat what the command
	// prints: warnings and errors only, unless --log-level asks for more.
	lc := cfg.Log
	if lv, _ := lc.SlogLevel(); lv < slog.LevelWarn && !fs.Changed("log-level") {
		lc.Level = "warn"
	}
	log := newLogger(w, lc)
	warnDeprecated(log, warnings)
	return cfg, log, nil
}

// defaultPerTransaction is how many relationships one transaction of an
// import carries: a few seconds of work, so that a failure loses little
// and no transaction meets SpiceDB's streaming timeout.
const defaultPerTransaction = 100_000

// errMemoryEngine explains why the administration commands cannot reach
// the default store.
var errMemoryEngine = errors.New(`relations.engine is "memory": that store lives inside the serving process ('pdp serve') and is gone when it stops, so no other command can reach it; seed it with relations.bootstrap, or configure relations.engine postgres (with relations.postgres_url) or remote`)

func runRelations(ctx context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
	if len(args) == 0 {
		return usagef("missing subcommand: import")
	}
	if args[0] != "import" {
		return usagef("unknown subcommand %q (there is: import)", args[0])
	}
	if len(args) > 2 {
		return usagef("import takes at most one file (- or none for stdin), got %d", len(args)-1)
	}
	batch, _ := fs.GetInt("batch")
	if batch < 1 {
		return usagef("--batch must be at least 1, got %d", batch)
	}
	every, _ := fs.GetDuration("progress")
	if every < 0 {
		return usagef("--progress must not be negative")
	}
	perTx, _ := fs.GetInt("per-transaction")
	skip, _ := fs.GetInt("skip")
	if perTx < 0 || skip < 0 {
		return usagef("--per-transaction and --skip must not be negative")
	}
	schemaFile, _ := fs.GetString("schema")
	cfg, log, err := adminConfig(fs, std.err)
	if err != nil {
		return err
	}
	rc := cfg.Relations
	switch rc.Engine {
	case relations.EngineMemory:
		return errMemoryEngine
	case pdpserver.EngineNone:
		return errors.New(`relations.engine is "none": there is no relationship store to import into`)
	}

	name, in := "stdin", std.in
	if len(args) == 2 && args[1] != "-" {
		f, err := os.Open(args[1])
		if err != nil {
			return err
		}
		defer f.Close()
		name, in = args[1], f
	} else if f, ok := in.(*os.File); ok && isTerminal(f) {
		fmt.Fprintln(std.err, "reading relationships from the terminal, one per line; end with Ctrl-D")
	}
	var zed []byte
	if schemaFile != "" {
		if zed, err = os.ReadFile(schemaFile); err != nil {
			return fmt.Errorf("--schema: %w", err)
		}
	}

	sc := rc.Store()
	sc.CacheSize = -1 // no reads to cache, no change feed to follow
	store, err := relations.Open(ctx, sc, log)
	if err != nil {
		return fmt.Errorf("open the relationship store (%s): %w", rc.Engine, err)
	}
	defer store.Close()
	if zed != nil {
		if _, err := store.WriteSchema(ctx, string(zed)); err != nil {
			return fmt.Errorf("write the schema of %s: %w", schemaFile, err)
		}
		fmt.Fprintf(std.out, "wrote the SpiceDB schema of %s\n", schemaFile)
	}

	p := startProgress(std.err, every)
	res, err := store.ImportRelationshipsFrom(ctx, skipRelationships(relations.ScanRelationships(in), skip),
		relations.ImportOptions{Batch: batch, PerTransaction: perTx, Progress: p.update})
	p.finish()
	if err != nil {
		return importFailure(ctx, name, skip, err)
	}
	skipped := ""
	if skip > 0 {
		skipped = fmt.Sprintf(" after skipping %s", groupDigits(int64(skip)))
	}
	fmt.Fprintf(std.out, "imported %s relationships from %s%s in %s (%s/s) at revision %s\n",
		groupDigits(int64(res.Loaded)), name, skipped, res.Elapsed.Round(time.Millisecond), groupDigits(int64(res.PerSecond())), res.Revision)
	publishImport(ctx, std, cfg, res)
	return nil
}

// publishImport publishes an import to the change feed of the replicas
// when they share one on PostgreSQL, and waits until every live replica
// applied it (their sidecars dropped what they cached before it). The
// replicas learn of the import through SpiceDB's Watch as well; a failure
// here is a warning, the import stands.
func publishImport(ctx context.Context, std stdio, cfg pdpserver.Config, res relations.ImportResult) {
	url := pdpserver.SharedFeedURL(cfg)
	if url == "" {
		return
	}
	payload, _ := json.Marshal(map[string]any{"revision": res.Revision, "loaded": res.Loaded})
	limit := pgfeed.ReplicaLease(cfg.HTTP.ChangeLease) + cfg.HTTP.ChangeLease + time.Second
	seq, err := pgfeed.PublishOnce(ctx, url, "pdp relations import", pgfeed.Change{Kind: "relations.import", Payload: payload}, limit)
	if err != nil {
		fmt.Fprintf(std.err, "warning: the import is not confirmed by every PDP replica's sidecars: %v\n", err)
		return
	}
	fmt.Fprintf(std.out, "every live PDP replica applied the import (change %d of the shared change feed)\n", seq)
}

// skipRelationships passes rels on without its first n relationships
// (every line is still read and parsed).
func skipRelationships(rels iter.Seq2[relations.Relationship, error], n int) iter.Seq2[relations.Relationship, error] {
	if n == 0 {
		return rels
	}
	return func(yield func(relations.Relationship, error) bool) {
		seen := 0
		for r, err := range rels {
			if err == nil && seen < n {
				seen++
				continue
			}
			if !yield(r, err) {
				return
			}
		}
	}
}

// importFailure says why an import failed and what of it was stored: the
// transactions committed before the failure, none after.
func importFailure(ctx context.Context, name string, skip int, err error) error {
	var committed uint64
	if ie, ok := errors.AsType[*relations.ImportError](err); ok {
		committed, err = ie.Committed, ie.Err
	}
	stored := "nothing was imported"
	if committed > 0 {
		done := uint64(skip) + committed
		stored = fmt.Sprintf("the first %s relationships of the input are stored, none after; once fixed, resume with --skip %d",
			groupDigits(int64(done)), done)
	}
	if le, ok := errors.AsType[*relations.LineError](err); ok {
		return fmt.Errorf("%s:%d: %v; %s", name, le.Line, le.Err, stored)
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted; %s", stored)
	case status.Code(err) == codes.AlreadyExists:
		return fmt.Errorf("%s: %w; the import creates relationships and refuses one that exists; %s", name, err, stored)
	}
	return fmt.Errorf("%s: %w; %s", name, err, stored)
}

func runMigrate(ctx context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
	if len(args) > 0 {
		return usagef("migrate takes no arguments (the database is relations.postgres_url)")
	}
	cfg, _, err := adminConfig(fs, std.err)
	rc := cfg.Relations
	if err != nil {
		return err
	}
	m, err := pdpserver.MigrateRelations(ctx, rc)
	if err != nil {
		return err
	}
	switch {
	case m.Before == m.After:
		fmt.Fprintf(std.out, "SpiceDB tables in %s already at %s: nothing to do\n", m.Where, m.After)
	case m.Before == "":
		fmt.Fprintf(std.out, "SpiceDB tables created in %s, at %s (%s)\n", m.Where, m.After, m.Took)
	default:
		fmt.Fprintf(std.out, "SpiceDB tables in %s migrated from %s to %s (%s)\n", m.Where, m.Before, m.After, m.Took)
	}
	if m.CommitTimestampsOff {
		fmt.Fprintln(std.err, "warning: this PostgreSQL server runs with track_commit_timestamp=off: SpiceDB's Watch, and with it the PDP's fact cache, needs track_commit_timestamp=on (set it in postgresql.conf and restart the server)")
	}
	return nil
}

// importProgress reports an import on w while it runs: on a terminal one
// line rewritten in place twice a second, otherwise a line per interval.
type importProgress struct {
	w       io.Writer
	tty     bool
	started time.Time
	sent    atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
	width   int // of the last line written on a terminal
}

func startProgress(w io.Writer, every time.Duration) *importProgress {
	p := &importProgress{w: w, tty: isTerminal(w), started: time.Now(), stop: make(chan struct{})}
	if p.tty {
		every = 500 * time.Millisecond
	}
	if every <= 0 {
		return p
	}
	p.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case now := <-t.C:
				p.write(now)
			}
		}
	})
	return p
}

// update is the import's progress callback.
func (p *importProgress) update(sent int) { p.sent.Store(int64(sent)) }

// finish stops the reports; on a terminal it writes the line a last time
// and ends it.
func (p *importProgress) finish() {
	close(p.stop)
	p.wg.Wait()
	if p.tty {
		p.write(time.Now())
		fmt.Fprintln(p.w)
	}
}

func (p *importProgress) write(now time.Time) {
	n := p.sent.Load()
	elapsed := now.Sub(p.started)
	rate := int64(0)
	if elapsed > 0 {
		rate = int64(float64(n) / elapsed.Seconds())
	}
	line := fmt.Sprintf("imported %s relationships  %s/s  elapsed %s", groupDigits(n), groupDigits(rate), elapsed.Round(time.Second))
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	pad := max(p.width-len(line), 0)
	p.width = len(line)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// groupDigits writes n with thousands separators: 1,234,000.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
