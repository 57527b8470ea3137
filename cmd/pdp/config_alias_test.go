package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/pflag"
)

// postgresKeys are the three sections whose PostgreSQL location was
// spelled postgres_uri.
var postgresKeys = []string{"relations", "delegations", "consent"}

// TestPostgresURLSpellings serves the Northbank example with SpiceDB, the
// delegation records and the consent ledger on PostgreSQL, their location
// given as postgres_url (current) or postgres_uri (deprecated), in the file
// or in the environment: every spelling reaches the database, and each
// deprecated one is warned about at start.
func TestPostgresURLSpellings(t *testing.T) {
	for _, c := range []struct {
		name      string
		spelling  string // the key's last part
		inFile    bool
		wantWarns bool
	}{
		{"file/postgres_url", "postgres_url", true, false},
		{"file/postgres_uri", "postgres_uri", true, true},
		{"env/postgres_url", "postgres_url", false, false},
		{"env/postgres_uri", "postgres_uri", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			uri := testDatabase(t)
			var args []string
			if c.inFile {
				args = []string{"--config", spellingConfig(t, c.spelling, uri)}
			} else {
				for _, section := range postgresKeys {
					t.Setenv(envName(section+".engine"), "postgres")
					t.Setenv(envName(section+"."+c.spelling), uri)
				}
			}
			s := startNorthbank(t, args...)
			// A cold embedded SpiceDB on a busy machine may first answer
			// facts_unavailable (its call timeout); the stores are what
			// is tested here, so wait for them.
			var frank, gina nbDecision
			eventually(t, "frank and gina are allowed", func() bool {
				frank, gina = frankAndGina(t, s)
				return frank.Decision && gina.Decision
			})
			s.stop(t)
			for _, table := range []string{"relation_tuple", "pdp_delegations", "pdp_consent_events"} {
				if n := countRows(t, uri, table); n == 0 {
					t.Errorf("%s is empty: the store is not on PostgreSQL", table)
				}
			}
			for _, section := range postgresKeys {
				old := section + ".postgres_uri"
				if !c.inFile {
					old = envName(old)
				}
				got := s.logs.find("WARN", "deprecated configuration key: ") != nil &&
					strings.Contains(s.logs.String(), old+" is deprecated: use ")
				if got != c.wantWarns {
					t.Errorf("warning about %s logged: %v, want %v; log:\n%s", old, got, c.wantWarns, s.logs)
				}
			}
		})
	}
}

// spellingConfig is the example's configuration file with the three
// stores on PostgreSQL at uri, under the key spelled key.
func spellingConfig(t *testing.T, key, uri string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(northbank, "pdp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(data)
	for _, from := range []string{"relations:\n  engine: memory\n", "delegations:\n  engine: file\n", "consent:\n  engine: file\n"} {
		section, _, _ := strings.Cut(from, ":")
		to := section + ":\n  engine: postgres\n  " + key + ": " + uri + "\n"
		if !strings.Contains(conf, from) {
			t.Fatalf("pdp.yaml has no %q", from)
		}
		conf = strings.Replace(conf, from, to, 1)
	}
	path := filepath.Join(t.TempDir(), "pdp.yaml")
	writeFile(t, path, conf)
	return path
}

// countRows counts the rows of table in the database at uri.
func countRows(t *testing.T, uri, table string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// TestDeprecatedKeysLoad: loading the configuration maps each deprecated
// spelling to the current key (file and environment), warns once for it,
// and refuses a setting given under both names in one place.
func TestDeprecatedKeysLoad(t *testing.T) {
	const url = "postgres://pdp@127.0.0.1:5432/pdp"
	for _, c := range []struct {
		name    string
		file    string
		env     map[string]string
		want    string // consent.postgres_url after loading
		warns   []string
		wantErr error
	}{
		{name: "file current", file: "consent:\n  postgres_url: " + url + "\n", want: url},
		{name: "file deprecated", file: "consent:\n  engine: postgres\n  postgres_uri: " + url + "\n", want: url,
			warns: []string{"consent.postgres_uri is deprecated: use consent.postgres_url"}},
		{name: "file both", file: "consent:\n  postgres_uri: a\n  postgres_url: b\n", wantErr: ErrBothSpellings},
		{name: "env current", env: map[string]string{"PDP_CONSENT_POSTGRES_URL": url}, want: url},
		{name: "env deprecated", env: map[string]string{"PDP_CONSENT_POSTGRES_URI": url}, want: url,
			warns: []string{"PDP_CONSENT_POSTGRES_URI is deprecated: use PDP_CONSENT_POSTGRES_URL"}},
		{name: "env both", env: map[string]string{"PDP_CONSENT_POSTGRES_URI": "a", "PDP_CONSENT_POSTGRES_URL": "b"}, wantErr: ErrBothSpellings},
		{name: "env deprecated over file current", file: "consent:\n  postgres_url: file\n",
			env: map[string]string{"PDP_CONSENT_POSTGRES_URI": url}, want: url,
			warns: []string{"PDP_CONSENT_POSTGRES_URI is deprecated: use PDP_CONSENT_POSTGRES_URL"}},
		{name: "deprecated file, other keys still checked", file: "consent:\n  postgres_uri: a\n  no_such_key: 1\n", wantErr: errAny},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			addConfigFlags(fs)
			if c.file != "" {
				path := filepath.Join(t.TempDir(), "pdp.yaml")
				writeFile(t, path, c.file)
				if err := fs.Parse([]string{"--config", path}); err != nil {
					t.Fatal(err)
				}
			}
			cfg, _, warns, err := loadConfigWarn(fs)
			switch {
			case c.wantErr == errAny && err != nil:
				return
			case c.wantErr != nil:
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v", err, c.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if cfg.Consent.PostgresURL != c.want {
				t.Errorf("consent.postgres_url = %q, want %q", cfg.Consent.PostgresURL, c.want)
			}
			if len(warns) != len(c.warns) {
				t.Fatalf("warnings %q, want %q", warns, c.warns)
			}
			for i, w := range c.warns {
				if !strings.HasSuffix(warns[i], w) {
					t.Errorf("warning %q, want it to end %q", warns[i], w)
				}
			}
		})
	}
}

// errAny stands for "some error" in TestDeprecatedKeysLoad.
var errAny = errors.New("any error")
