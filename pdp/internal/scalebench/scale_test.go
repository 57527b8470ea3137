package scalebench

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/relations"
	"github.com/ciampdp/pdp/pdp/sources"
)

// The scale run is off unless PDP_SCALE_POSTGRES_URL names a PostgreSQL
// server (any database on it: the run creates its own). It takes long
// (7 minutes on the project's 2-core machine, most of it the import) and
// leaves a database of about 5 GB:
//
//	PDP_SCALE_POSTGRES_URL=$(scripts/postgres.sh start) \
//	  go test ./pdp/internal/scalebench/ -run TestScale -v -timeout 3h
//
// Optional: PDP_SCALE_DB (database name, default pdp_scale; dropped and
// recreated, kept afterwards), PDP_SCALE_USERS (default 1,000,000),
// PDP_SCALE_BATCH (relationships per import message, default 1,000),
// PDP_SCALE_DECISIONS (default 20,000), PDP_SCALE_REUSE=1 (skip the import
// and measure decisions on the database a previous run left).
const scaleEnv = "PDP_SCALE_POSTGRES_URL"

// importBudget is how long the import may run: past it, the transaction
// in progress is abandoned and the decisions are measured on what the
// transactions before it committed.
const importBudget = 40 * time.Minute

// perTransaction is how many relationships one import transaction carries
// (as pdp relations import does by default).
const perTransaction = 100_000

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

func TestScale(t *testing.T) {
	base := os.Getenv(scaleEnv)
	if base == "" {
		t.Skipf("SKIPPED: %s is not set: the scale run (1 M users, 10 M relationships in SpiceDB on PostgreSQL, then 20,000 decisions) takes long and runs only on demand; see BENCHMARKS.md", scaleEnv)
	}
	p := Default
	p.Users = envInt(t, "PDP_SCALE_USERS", p.Users)
	batch := envInt(t, "PDP_SCALE_BATCH", relations.DefaultImportBatch)
	decisions := envInt(t, "PDP_SCALE_DECISIONS", 20_000)
	dbName := os.Getenv("PDP_SCALE_DB")
	if dbName == "" {
		dbName = "pdp_scale"
	}
	reuse := os.Getenv("PDP_SCALE_REUSE") != ""
	ctx := context.Background()
	runStart := time.Now()
	t.Logf("population: %s; database %s", p, dbName)
	logLoad(t, "at the start")

	admin := func(sql string) {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if !reuse {
		admin("DROP DATABASE IF EXISTS " + pgx.Identifier{dbName}.Sanitize() + " WITH (FORCE)")
		admin("CREATE DATABASE " + pgx.Identifier{dbName}.Sanitize())
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + dbName
	uri := u.String()

	started := time.Now()
	if err := relations.Migrate(ctx, uri); err != nil {
		t.Fatal(err)
	}
	t.Logf("migrated %s in %s", dbName, time.Since(started).Round(time.Millisecond))
	store, err := relations.Open(ctx, relations.Config{Engine: relations.EnginePostgres, PostgresURI: uri, CacheSize: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	first := p.FirstAccounts()
	usersImported := p.Users
	if !reuse {
		if _, err := store.WriteSchema(ctx, Zed); err != nil {
			t.Fatal(err)
		}
		usersImported = importPopulation(t, store, p, first, batch)
		started = time.Now()
		db, err := pgx.Connect(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, "ANALYZE"); err != nil {
			t.Fatal(err)
		}
		db.Close(ctx)
		t.Logf("ANALYZE in %s (autovacuum would do it soon after such an import)", time.Since(started).Round(time.Millisecond))
	}
	reportSize(t, uri)
	logLoad(t, "before the decisions")
	measureDecisions(t, store, p, first, usersImported, decisions)
	logLoad(t, "after the decisions")
	t.Logf("RESULT wall time of the whole run: %s", time.Since(runStart).Round(time.Second))
}

// logLoad notes the machine's load average (Linux), which the numbers
// depend on.
func logLoad(t *testing.T, when string) {
	t.Helper()
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average %s: %s", when, strings.TrimSpace(string(b)))
	}
}

// importPopulation streams the population into one import, in
// transactions of perTransaction relationships, and reports the rate; it
// returns how many users it imported (all of them, unless the budget ran
// out: the transactions committed by then stay).
func importPopulation(t *testing.T, store *relations.Store, p Params, first []int32, batch int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), importBudget)
	defer cancel()
	started := time.Now()
	lastReport := started
	progress := func(sent int) {
		if now := time.Now(); now.Sub(lastReport) >= 30*time.Second {
			lastReport = now
			t.Logf("  %d relationships sent, %.0f/s, %s", sent, float64(sent)/now.Sub(started).Seconds(), now.Sub(started).Round(time.Second))
		}
	}
	rels := func(yield func(relations.Relationship, error) bool) {
		for r := range p.Relationships(0, p.Users, 0) {
			if !yield(r, nil) {
				return
			}
		}
	}
	res, err := store.ImportRelationshipsFrom(ctx, rels, relations.ImportOptions{Batch: batch, PerTransaction: perTransaction, Progress: progress})
	if err != nil {
		ie, ok := errors.AsType[*relations.ImportError](err)
		if !ok || ctx.Err() == nil {
			t.Fatalf("import: %v", err)
		}
		t.Logf("IMPORT STOPPED: the %s budget ran out", importBudget)
		logRate(t, "import (partial)", ie.Committed, time.Since(started))
		// Users whose relationships all committed, at the least: users
		// [0, u) have at most one guardian each and five relationships per
		// account, after the branch staff.
		staff := uint64(p.Branches * p.StaffPerBranch)
		return sort.Search(p.Users, func(u int) bool { return staff+uint64(u)+5*uint64(first[u]) > ie.Committed }) - 1
	}
	logRate(t, "import", res.Loaded, res.Elapsed)
	return p.Users
}

func logRate(t *testing.T, what string, n uint64, d time.Duration) {
	t.Helper()
	t.Logf("RESULT %s: %d relationships in %s = %.0f relationships/s", what, n, d.Round(time.Second), float64(n)/d.Seconds())
}

func reportSize(t *testing.T, uri string) {
	t.Helper()
	ctx := context.Background()
	db, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	var dbSize, tableSize string
	var rows int64
	err = db.QueryRow(ctx, `SELECT pg_size_pretty(pg_database_size(current_database())),
		pg_size_pretty(pg_total_relation_size('relation_tuple')), (SELECT count(*) FROM relation_tuple)`).Scan(&dbSize, &tableSize, &rows)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RESULT size: database %s, relation_tuple with indexes %s, %d rows", dbSize, tableSize, rows)
}

// measureDecisions runs decisions through the engine, fact cache off, for
// random users among the first `users`: half on one of their own
// accounts, half on any account; views (one fact) and payments (two facts,
// one bulk call) alternately. 1,000 decisions first warm up, unmeasured.
func measureDecisions(t *testing.T, store *relations.Store, p Params, first []int32, users, n int) {
	t.Helper()
	bundle, err := policy.LoadFiles(map[string][]byte{
		"schema/scale.cedarschema": []byte(CedarSchema),
		"schema/scale.zed":         []byte(Zed),
		"policies/scale.cedar":     []byte(Policies),
	})
	if err != nil {
		t.Fatal(err)
	}
	engine := pdp.NewEngine(pdp.Components{Bundles: bundle, Facts: sources.Facts{Store: store}})
	rng := rand.New(rand.NewPCG(p.Seed, 99))
	accounts := int(first[users])
	request := func(i int) pdp.Request {
		u := rng.IntN(users)
		a := rng.IntN(accounts)
		if rng.IntN(2) == 0 {
			a = int(first[u]) + rng.IntN(int(first[u+1]-first[u]))
		}
		r := pdp.Request{
			Subject:  pdp.Entity{Type: "User", ID: UserID(u)},
			Action:   pdp.Action{Name: "view_account"},
			Resource: pdp.Entity{Type: "Account", ID: AccountID(a)},
		}
		if i%2 == 1 {
			r.Action.Name = "make_payment"
			r.Context = map[string]any{"amount": 1 + rng.IntN(20_000)}
		}
		return r
	}
	ctx := context.Background()
	for i := range 1000 {
		if _, err := engine.Decide(ctx, request(i)); err != nil {
			t.Fatal(err)
		}
	}
	var all, views, payments []time.Duration
	allowed, failed := 0, 0
	started := time.Now()
	for i := range n {
		req := request(i)
		t0 := time.Now()
		d, err := engine.Decide(ctx, req)
		took := time.Since(t0)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(d.Reasons, pdp.ReasonFactsUnavailable) {
			failed++
			if failed <= 3 {
				t.Errorf("facts unavailable: %s", d.Message)
			}
		}
		if d.Allowed {
			allowed++
		}
		all = append(all, took)
		if i%2 == 0 {
			views = append(views, took)
		} else {
			payments = append(payments, took)
		}
	}
	elapsed := time.Since(started)
	t.Logf("RESULT decisions: %d in %s (%.0f/s, one at a time), %d allowed, %d without facts", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), allowed, failed)
	p99 := logLatencies(t, "all", all)
	logLatencies(t, "view_account (1 fact, CheckPermission)", views)
	logLatencies(t, "make_payment (2 facts, CheckBulkPermissions)", payments)
	const target = 5 * time.Millisecond
	if p99 < target {
		t.Logf("RESULT target p99 < %s: met (%s)", target, p99)
	} else {
		t.Logf("RESULT target p99 < %s: MISSED by %s (%s)", target, p99-target, p99)
	}
}

func logLatencies(t *testing.T, what string, l []time.Duration) time.Duration {
	t.Helper()
	slices.Sort(l)
	q := func(f float64) time.Duration { return l[min(len(l)-1, int(f*float64(len(l))))].Round(time.Microsecond) }
	t.Logf("RESULT latency %s (%d): p50 %s  p90 %s  p99 %s  max %s", what, len(l), q(0.50), q(0.90), q(0.99), l[len(l)-1].Round(time.Microsecond))
	return q(0.99)
}
