package pgkit_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/internal/pgkit"
	"github.com/ciampdp/pdp/pdp/trail/pgtrail"
)

const pgEnv = "PDP_TEST_POSTGRES_URL"

// freshSchema creates an empty schema (dropped at cleanup) and returns its
// name and the test URL with search_path set to it, so that the stores'
// unqualified tables land there.
func freshSchema(t *testing.T) (string, string) {
	t.Helper()
	base := os.Getenv(pgEnv)
	if base == "" {
		t.Skipf("SKIPPED: %s is not set: the PostgreSQL opener is not tested (export %s=$(scripts/postgres.sh start))", pgEnv, pgEnv)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	schema := fmt.Sprintf("pgkit_%x", b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return schema, base + sep + "search_path=" + url.QueryEscape(schema)
}

// tables lists the tables in schema.
func tables(t *testing.T, dbURL, schema string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

// TestOpenConcurrently: openers of one schema starting together (replicas)
// all succeed and create the tables once.
func TestOpenConcurrently(t *testing.T) {
	schema, dbURL := freshSchema(t)
	s := pgkit.Schema{LockKey: 0x70676b6974746573, DDL: `
CREATE TABLE IF NOT EXISTS kit_a (id bigint PRIMARY KEY);
CREATE INDEX IF NOT EXISTS kit_a_id ON kit_a (id);
CREATE TABLE IF NOT EXISTS kit_b (one int PRIMARY KEY);
INSERT INTO kit_b VALUES (1) ON CONFLICT DO NOTHING;`,
		Params: map[string]string{"application_name": "pgkit-test"}}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool, err := pgkit.Open(t.Context(), dbURL, s)
			if err != nil {
				errs <- err
				return
			}
			defer pool.Close()
			var name string
			if err := pool.QueryRow(t.Context(), "SHOW application_name").Scan(&name); err != nil || name != "pgkit-test" {
				errs <- fmt.Errorf("application_name %q %v, want the Params value", name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := strings.Join(tables(t, dbURL, schema), ","); got != "kit_a,kit_b" {
		t.Errorf("tables %s, want kit_a,kit_b", got)
	}
}

// TestOpenBadURLAndDDL: the errors name what failed.
func TestOpenBadURLAndDDL(t *testing.T) {
	if _, err := pgkit.Open(t.Context(), "postgres://[::1", pgkit.Schema{}); err == nil || !strings.HasPrefix(err.Error(), "postgres: ") {
		t.Errorf("bad URL: %v", err)
	}
	_, dbURL := freshSchema(t)
	if _, err := pgkit.Open(t.Context(), dbURL, pgkit.Schema{LockKey: 1, DDL: "CREATE TABLEX nope"}); err == nil ||
		!strings.HasPrefix(err.Error(), "postgres: create tables: ") {
		t.Errorf("bad DDL: %v", err)
	}
}

// TestStoresOpenConcurrently: the four PostgreSQL stores (delegation
// records, consent ledger, trail, policy archive), each opened by several
// replicas at once in an empty schema, all open and create their tables.
func TestStoresOpenConcurrently(t *testing.T) {
	schema, dbURL := freshSchema(t)
	openers := map[string]func(ctx context.Context) (func(), error){
		"delegation": func(ctx context.Context) (func(), error) {
			s, err := delegation.OpenPostgres(ctx, dbURL)
			if err != nil {
				return nil, err
			}
			return func() { _ = s.Close() }, nil
		},
		"consent": func(ctx context.Context) (func(), error) {
			s, err := consent.OpenPostgres(ctx, dbURL)
			if err != nil {
				return nil, err
			}
			return func() { _ = s.Close() }, nil
		},
		"trail": func(ctx context.Context) (func(), error) {
			l, err := pgtrail.Open(ctx, dbURL, pgtrail.Options{Schema: schema})
			if err != nil {
				return nil, err
			}
			return func() { _ = l.Close() }, nil
		},
		"archive": func(ctx context.Context) (func(), error) {
			a, err := audit.OpenPostgresArchive(ctx, dbURL, schema)
			if err != nil {
				return nil, err
			}
			return a.Close, nil
		},
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closes []func()
	)
	for name, open := range openers {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := open(ctx)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				closes = append(closes, c)
			}()
		}
	}
	wg.Wait()
	for _, c := range closes {
		c()
	}
	want := []string{"pdp_consent_activity", "pdp_consent_events", "pdp_delegation_events", "pdp_delegations",
		"trail_checkpoints", "trail_hashes", "trail_head", "trail_policy_versions", "trail_records"}
	got := tables(t, dbURL, schema)
	for _, w := range want {
		if sort.SearchStrings(got, w) == len(got) || got[sort.SearchStrings(got, w)] != w {
			t.Errorf("table %s missing in %v", w, got)
		}
	}
}
