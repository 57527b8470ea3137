package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/relations"
)

// pgEnv points the PostgreSQL tests at a server (scripts/postgres.sh).
const pgEnv = "PDP_TEST_POSTGRES_URL"

const importSchema = `
caveat within_limit(amount int, limit int) {
	amount <= limit
}
definition user {}
definition account {
	relation owner: user
	relation delegate: user with within_limit
	permission pay = owner + delegate
}
`

// progressLine is what a progress report on stderr looks like.
var progressLine = regexp.MustCompile(`(?m)^imported [0-9,]+ relationships  [0-9,]+/s  elapsed [0-9]+s$`)

// testDatabase creates a database of its own for one test on the server of
// PDP_TEST_POSTGRES_URL (dropped at cleanup) and returns its URI; it skips
// the test without the variable. SpiceDB keeps one schema per database, so
// a database of its own keeps the test clear of every other's schema.
func testDatabase(t *testing.T) string {
	t.Helper()
	base := os.Getenv(pgEnv)
	if base == "" {
		t.Skipf("SKIPPED: %s is not set (export %s=$(scripts/postgres.sh start))", pgEnv, pgEnv)
	}
	admin := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	name := "pdp_cmd_" + randomHex(6)
	if err := admin("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		// FORCE cannot end an autovacuum worker (it runs as the
		// superuser): one that is analysing the fresh tables is waited out.
		var err error
		for range 50 {
			if err = admin("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err == nil || !strings.Contains(err.Error(), "42501") {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", pgEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// writeConfig writes a configuration file with the given relations section
// (YAML lines, indented by the caller) and returns its path.
func writeConfig(t *testing.T, relationsYAML string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pdp.yaml")
	writeFile(t, path, "relations:\n"+relationsYAML)
	return path
}

func postgresConfig(t *testing.T, uri string) string {
	return writeConfig(t, "  engine: postgres\n  postgres_uri: "+uri+"\n")
}

// relationshipsFile writes n owner relationships (objects named with
// prefix), a caveated delegate, comments and blank lines; it returns the
// path.
func relationshipsFile(t *testing.T, prefix string, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# generated\n\n")
	for i := range n {
		fmt.Fprintf(&b, "account:%sacc%d#owner@user:%su%d\n", prefix, i, prefix, i%50)
	}
	fmt.Fprintf(&b, "// a delegate within a limit\naccount:%sacc0#delegate@user:%sbob[within_limit:{\"limit\":100}]\n", prefix, prefix)
	path := filepath.Join(t.TempDir(), "rels.txt")
	writeFile(t, path, b.String())
	return path
}

// openStore opens the store of a configuration's relations section, to
// read back what a command did; closed at cleanup.
func openStore(t *testing.T, cfg relations.Config) *relations.Store {
	t.Helper()
	s := openStoreNow(t, cfg)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openStoreNow(t *testing.T, cfg relations.Config) *relations.Store {
	t.Helper()
	cfg.CacheSize = -1
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := relations.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

// withPostgresStore runs fn with a store on the database and closes it
// before it returns: SpiceDB on PostgreSQL takes a lock that a second
// SpiceDB on the same database waits for, seconds at a time, when it
// closes, so none stays open while a command runs.
func withPostgresStore(t *testing.T, uri string, fn func(s *relations.Store)) {
	t.Helper()
	s := openStoreNow(t, relations.Config{Engine: relations.EnginePostgres, PostgresURI: uri})
	defer s.Close()
	fn(s)
}

func countOwners(t *testing.T, s *relations.Store, prefix string) int {
	t.Helper()
	rels, err := s.ReadRelationships(context.Background(), relations.Filter{ResourceType: "account", Relation: "owner"})
	if err != nil {
		t.Fatalf("read relationships: %v", err)
	}
	n := 0
	for _, r := range rels {
		if strings.HasPrefix(r.Resource.ID, prefix) {
			n++
		}
	}
	return n
}

func countOwnersIn(t *testing.T, uri, prefix string) (n int) {
	t.Helper()
	withPostgresStore(t, uri, func(s *relations.Store) { n = countOwners(t, s, prefix) })
	return n
}

func TestRelationsImportPostgres(t *testing.T) {
	t.Parallel()
	uri := testDatabase(t)
	cfg := postgresConfig(t, uri)
	zed := filepath.Join(t.TempDir(), "s.zed")
	writeFile(t, zed, importSchema)
	p := "t" + randomHex(3) + "-"
	const n = 5000
	file := relationshipsFile(t, p, n)

	r := runCLI(t, "", "relations", "import", "--config", cfg, "--schema", zed, "--batch", "250", "--progress", "1ms", file)
	if r.code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if want := fmt.Sprintf("imported 5,001 relationships from %s in ", file); !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "/s) at revision ") {
		t.Errorf("stdout lacks the summary %q…:\n%s", want, r.stdout)
	}
	if !strings.Contains(r.stdout, "wrote the SpiceDB schema of "+zed) {
		t.Errorf("stdout does not report the schema:\n%s", r.stdout)
	}
	if !progressLine.MatchString(r.stderr) {
		t.Errorf("no progress line on stderr:\n%s", r.stderr)
	}

	withPostgresStore(t, uri, func(s *relations.Store) {
		if got := countOwners(t, s, p); got != n {
			t.Fatalf("%d owners read back, want %d", got, n)
		}
		res, err := s.CheckBulk(context.Background(), []relations.Check{
			{Resource: relations.Object{Type: "account", ID: p + "acc4321"}, Permission: "pay", Subject: relations.Object{Type: "user", ID: p + "u21"}},
			{Resource: relations.Object{Type: "account", ID: p + "acc0"}, Permission: "pay", Subject: relations.Object{Type: "user", ID: p + "bob"}, Context: map[string]any{"amount": 50}},
			{Resource: relations.Object{Type: "account", ID: p + "acc0"}, Permission: "pay", Subject: relations.Object{Type: "user", ID: p + "bob"}, Context: map[string]any{"amount": 500}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Items[0].Has || !res.Items[1].Has || res.Items[2].Has {
			t.Fatalf("checks after the import: %+v, want HAS HAS NO", res.Items)
		}
	})

	// The same relationships again: refused as a whole, and said why.
	r = runCLI(t, "", "relations", "import", "--config", cfg, file)
	if r.code != exitFailure || !strings.Contains(r.stderr, "nothing was imported") || !strings.Contains(r.stderr, "already exist") {
		t.Fatalf("re-import: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// TestRelationsImportParseError: a line that does not parse stops the
// import, named with its line; nothing of its transaction is stored. In
// transactions of 4, the two committed before it stay, and the message
// says how to resume, which then imports the rest.
func TestRelationsImportParseError(t *testing.T) {
	t.Parallel()
	uri := testDatabase(t)
	cfg := postgresConfig(t, uri)
	zed := filepath.Join(t.TempDir(), "s.zed")
	writeFile(t, zed, importSchema)
	p := "t" + randomHex(3) + "-"
	text := func(bad bool) string {
		var b strings.Builder
		b.WriteString("# ten good lines, then a bad one on line 12\n")
		for i := range 10 {
			fmt.Fprintf(&b, "account:%sacc%d#owner@user:%su\n", p, i, p)
		}
		if bad {
			fmt.Fprintf(&b, "account:%sacc10#owner@\n", p)
		} else {
			fmt.Fprintf(&b, "account:%sacc10#owner@user:%su\n", p, p)
		}
		fmt.Fprintf(&b, "account:%sacc11#owner@user:%su\n", p, p)
		return b.String()
	}
	file := filepath.Join(t.TempDir(), "bad.txt")
	writeFile(t, file, text(true))
	r := runCLI(t, "", "relations", "import", "--config", cfg, "--schema", zed, "--batch", "3", file)
	if r.code != exitFailure {
		t.Fatalf("exit %d, want %d\nstderr:\n%s", r.code, exitFailure, r.stderr)
	}
	if want := file + ":12: "; !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "nothing was imported") {
		t.Fatalf("stderr does not name %q and say nothing was imported:\n%s", want, r.stderr)
	}
	if strings.Contains(r.stdout, "imported ") {
		t.Errorf("a summary for a failed import:\n%s", r.stdout)
	}
	if got := countOwnersIn(t, uri, p); got != 0 {
		t.Fatalf("%d relationships stored after a failed import, want none", got)
	}

	r = runCLI(t, "", "relations", "import", "--config", cfg, "--batch", "3", "--per-transaction", "4", file)
	if r.code != exitFailure || !strings.Contains(r.stderr, file+":12: ") ||
		!strings.Contains(r.stderr, "the first 8 relationships of the input are stored, none after; once fixed, resume with --skip 8") {
		t.Fatalf("in transactions of 4: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if got := countOwnersIn(t, uri, p); got != 8 {
		t.Fatalf("%d relationships stored, want the 8 of the two committed transactions", got)
	}

	writeFile(t, file, text(false))
	r = runCLI(t, "", "relations", "import", "--config", cfg, "--per-transaction", "4", "--skip", "8", file)
	if r.code != exitOK || !strings.Contains(r.stdout, "imported 4 relationships from "+file+" after skipping 8 in ") {
		t.Fatalf("resume: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if got := countOwnersIn(t, uri, p); got != 12 {
		t.Fatalf("%d relationships stored after the resume, want 12", got)
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	cfg := postgresConfig(t, testDatabase(t))
	r := runCLI(t, "", "migrate", "--config", cfg)
	if r.code != exitOK || !strings.Contains(r.stdout, "SpiceDB tables created in postgres://") || strings.Contains(r.stdout, ":pdp@") {
		t.Fatalf("first migrate: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "", "migrate", "--config", cfg)
	if r.code != exitOK || !strings.Contains(r.stdout, "nothing to do") {
		t.Fatalf("second migrate: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// remoteSpiceDB starts an embedded SpiceDB (memory datastore, the import
// schema) serving plaintext gRPC on a loopback port, and returns it with a
// configuration of relations.engine remote that reaches it.
func remoteSpiceDB(t *testing.T) (*relations.Store, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	key := randomHex(8)
	s := openStore(t, relations.Config{Engine: relations.EngineMemory, PresharedKey: key, Listen: addr})
	if _, err := s.WriteSchema(context.Background(), importSchema); err != nil {
		t.Fatal(err)
	}
	return s, writeConfig(t, fmt.Sprintf("  engine: remote\n  endpoint: %s\n  preshared_key: %s\n  insecure: true\n", addr, key))
}

// TestRelationsImportStreams feeds stdin through a pipe and writes the
// second half only once the first has been sent to SpiceDB: the import
// reads as it goes, never the whole input first.
func TestRelationsImportStreams(t *testing.T) {
	t.Parallel()
	server, cfg := remoteSpiceDB(t)
	pr, pw := io.Pipe()
	var stdout bytes.Buffer
	stderr := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(t.Context(), []string{"relations", "import", "--config", cfg, "--batch", "100", "--progress", "1ms", "-"}, pr, &stdout, stderr)
	}()
	writeLines := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := fmt.Fprintf(pw, "account:s%d#owner@user:u%d\n", i, i%7); err != nil {
				t.Errorf("write line %d: %v", i, err)
				return
			}
		}
	}
	writeLines(0, 300)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "imported 300 relationships") {
		if time.Now().After(deadline) {
			pw.CloseWithError(io.ErrUnexpectedEOF)
			t.Fatalf("the first 300 relationships were not sent before the rest of the input was written; stderr:\n%s", stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	writeLines(300, 1000)
	_ = pw.Close()
	if code := <-done; code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout.String(), "imported 1,000 relationships from stdin") {
		t.Errorf("summary: %s", stdout.String())
	}
	// The summary's revision is what another client reads at least as
	// fresh as.
	_, revision, _ := strings.Cut(strings.TrimSpace(stdout.String()), " at revision ")
	if err := server.Observe(t.Context(), revision); err != nil {
		t.Fatal(err)
	}
	if got := countOwners(t, server, "s"); got != 1000 {
		t.Fatalf("%d relationships in the remote SpiceDB, want 1000", got)
	}
}

func TestRelationsCommandErrors(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "no-such-file.txt")
	memory := writeConfig(t, "  engine: memory\n")
	none := writeConfig(t, "  engine: none\n")
	unreachable := writeConfig(t, "  engine: postgres\n  postgres_uri: postgres://pdp:pdp@127.0.0.1:1/nowhere?sslmode=disable\n")
	_, remote := remoteSpiceDB(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no subcommand", []string{"relations"}, exitUsage, "missing subcommand: import"},
		{"unknown subcommand", []string{"relations", "export"}, exitUsage, `unknown subcommand "export"`},
		{"two files", []string{"relations", "import", "a", "b"}, exitUsage, "at most one file"},
		{"bad batch", []string{"relations", "import", "--batch", "0", "a"}, exitUsage, "--batch must be at least 1"},
		{"negative skip", []string{"relations", "import", "--skip", "-1", "a"}, exitUsage, "must not be negative"},
		{"the memory engine (the default)", []string{"relations", "import", "a"}, exitFailure, "relations.bootstrap"},
		{"the memory engine, configured", []string{"relations", "import", "--config", memory, "a"}, exitFailure, "lives inside the serving process"},
		{"no store", []string{"relations", "import", "--config", none, "a"}, exitFailure, `relations.engine is "none"`},
		{"missing file", []string{"relations", "import", "--config", remote, missing}, exitFailure, "no such file"},
		{"missing schema file", []string{"relations", "import", "--config", remote, "--schema", missing}, exitFailure, "--schema"},
		{"store unreachable", []string{"relations", "import", "--config", unreachable}, exitFailure, "open the relationship store (postgres)"},
		{"migrate takes no argument", []string{"migrate", "x"}, exitUsage, "no arguments"},
		{"migrate the memory engine", []string{"migrate", "--config", memory}, exitFailure, "needs no migration"},
		{"migrate a remote", []string{"migrate", "--config", remote}, exitFailure, "spicedb datastore migrate head"},
		{"migrate an unreachable database", []string{"migrate", "--config", unreachable}, exitFailure, "connect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, "", tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Fatalf("exit %d, want %d; stderr:\n%s\nwant %q in it", r.code, tc.code, r.stderr, tc.stderr)
			}
		})
	}
}

func TestImportProgress(t *testing.T) {
	t.Parallel()
	var w lockedBuffer
	p := startProgress(&w, time.Millisecond)
	p.update(1234000)
	time.Sleep(20 * time.Millisecond)
	p.finish()
	if !strings.Contains(w.String(), "imported 1,234,000 relationships  ") || !progressLine.MatchString(w.String()) {
		t.Fatalf("progress:\n%s", w.String())
	}
	var quiet lockedBuffer
	p = startProgress(&quiet, 0)
	p.update(5)
	p.finish()
	if quiet.String() != "" {
		t.Fatalf("progress 0 wrote %q", quiet.String())
	}
}

func TestGroupDigits(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 45300: "45,300", 1234000: "1,234,000", -1234: "-1,234"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", n, got, want)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader in
// different goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
