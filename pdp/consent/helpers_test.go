package consent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/purposes"
)

// pgEnv names the variable that points the tests at PostgreSQL.
const pgEnv = "PDP_TEST_POSTGRES_URL"

func TestMain(m *testing.M) {
	if os.Getenv(helperProcessEnv) != "" {
		os.Exit(runHelperProcess())
	}
	if os.Getenv(pgEnv) == "" {
		fmt.Fprintf(os.Stderr, "\n*** consent: %s is not set: every PostgreSQL test is SKIPPED.\n"+
			"*** Start one with: export %s=$(scripts/postgres.sh start)\n\n", pgEnv, pgEnv)
	}
	os.Exit(m.Run())
}

// storeKind is one Store implementation; the behaviour tests run on each.
type storeKind struct {
	name string
	// open returns a fresh store (closed at cleanup) and a suffix unique to
	// the test, to put in every subject, so that tests sharing a database
	// do not see each other's events.
	open func(t testing.TB) (Store, string)
}

var storeKinds = []storeKind{
	{"file", openFileT},
	{"postgres", openPostgresT},
}

func forEachStore(t *testing.T, fn func(t *testing.T, st Store, sfx string)) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) {
			st, sfx := k.open(t)
			fn(t, st, sfx)
		})
	}
}

func openFileT(t testing.TB) (Store, string) {
	t.Helper()
	s, err := OpenFile(filepath.Join(t.TempDir(), "state", "consent.jsonl"))
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, ""
}

func randomSuffix() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "-t" + hex.EncodeToString(b)
}

// pgURI returns the test database, or skips the test loudly.
func pgURI(t testing.TB) string {
	t.Helper()
	uri := os.Getenv(pgEnv)
	if uri == "" {
		t.Skipf("SKIPPED: %s not set: the PostgreSQL store is not tested (export %s=$(scripts/postgres.sh start))", pgEnv, pgEnv)
	}
	return uri
}

// openPostgresT opens a PostgresStore on the shared test database; at
// cleanup it deletes the rows of the subjects that end with the test's
// suffix (never the tables: other tests use them at the same time).
func openPostgresT(t testing.TB) (Store, string) {
	t.Helper()
	uri := pgURI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := OpenPostgres(ctx, uri)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	sfx := randomSuffix()
	t.Cleanup(func() {
		_ = s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, uri)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer conn.Close(ctx)
		for _, table := range []string{"pdp_consent_events", "pdp_consent_activity"} {
			if _, err := conn.Exec(ctx, "DELETE FROM "+table+" WHERE subject LIKE '%' || $1", sfx); err != nil {
				t.Errorf("cleanup %s: %v", table, err)
			}
		}
	})
	return s, sfx
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func ymd(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func timep(t time.Time) *time.Time { return &t }

// ledgerToday is "today" of the scenario.
var ledgerToday = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// fakeDelegation is one delegation the fake checker knows.
type fakeDelegation struct {
	principal, agent Ref
	from, until      time.Time
	statutory        bool
	scope            []string
}

// fakeDelegations stands in for package delegation, the edge the ledger
// does not own: a delegation is in force from principal to agent between
// from and until.
type fakeDelegations struct {
	mu    sync.Mutex
	m     map[string]fakeDelegation
	calls atomic.Int64
}

func (f *fakeDelegations) add(id string, d fakeDelegation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]fakeDelegation{}
	}
	f.m[id] = d
}

func (f *fakeDelegations) Representative(_ context.Context, agent, principal Ref, id string, at time.Time) (Mandate, error) {
	f.calls.Add(1)
	f.mu.Lock()
	d, ok := f.m[id]
	f.mu.Unlock()
	switch {
	case !ok:
		return Mandate{}, fmt.Errorf("delegation %s not found", id)
	case d.principal != principal || d.agent != agent:
		return Mandate{}, fmt.Errorf("delegation %s is not from %s to %s", id, principal, agent)
	case at.Before(d.from) || !at.Before(d.until):
		return Mandate{}, fmt.Errorf("delegation %s is not in force at %s", id, at.Format(time.RFC3339))
	}
	return Mandate{Statutory: d.statutory, Scope: d.scope}, nil
}

// testRegistry parses testdata/purposes.yaml, the Northbank registry.
func testRegistry(t testing.TB) *Registry {
	t.Helper()
	data, err := os.ReadFile("testdata/purposes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := purposes.ParseRegistry(data)
	if err != nil {
		t.Fatalf("ParseRegistry: %v", err)
	}
	return reg
}

// testKey is the receipt signing key of the tests.
var testKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

// lenv is a Ledger on a store with a fake clock and fake delegations.
type lenv struct {
	t     testing.TB
	st    Store
	l     *Ledger
	reg   atomic.Pointer[Registry]
	clock *fakeClock
	dels  *fakeDelegations
	sfx   string
}

func newLenv(t testing.TB, st Store, sfx string, tweak ...func(*LedgerConfig)) *lenv {
	t.Helper()
	e := &lenv{t: t, st: st, clock: &fakeClock{t: ledgerToday}, dels: &fakeDelegations{}, sfx: sfx}
	e.reg.Store(testRegistry(t))
	c := LedgerConfig{
		Store: st, Registry: e.reg.Load, Delegations: e.dels, SigningKey: testKey, KeyID: "test-1",
		Controller: "Northbank AG", Now: e.clock.Now,
	}
	for _, f := range tweak {
		f(&c)
	}
	l, err := NewLedger(c)
	if err != nil {
		t.Fatalf("NewLedger: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	e.l = l
	return e
}

func (e *lenv) user(id string) Ref { return Ref{Type: "user", ID: id + e.sfx} }

func (e *lenv) give(r ChoiceRequest) Event {
	e.t.Helper()
	ev, _, err := e.l.Give(context.Background(), r)
	if err != nil {
		e.t.Fatalf("Give(%s, %s): %v", r.Subject, r.Purpose, err)
	}
	return ev
}

func (e *lenv) check(subject Ref, purpose, app, jurisdiction string) CheckResult {
	e.t.Helper()
	res, err := e.l.Check(context.Background(), CheckQuery{
		Subject: subject, Purpose: purpose, Application: app, Jurisdiction: jurisdiction, Now: e.clock.Now(),
	})
	if err != nil {
		e.t.Fatalf("Check(%s, %s): %v", subject, purpose, err)
	}
	return res
}

// advice is a valid grant of financial_advice for subject.
func advice(subject Ref) ChoiceRequest {
	return ChoiceRequest{
		Application: "advisor-portal", Subject: subject, Purpose: "financial_advice", Jurisdiction: "DE",
		Notice: Notice{URI: "https://northbank.example/privacy/advice", Version: 2}, Channel: "web",
	}
}

// statusOf maps an error as the HTTP layer does (errors.go).
func statusOf(err error) int {
	var re *RuleError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrDecode):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.As(err, &re):
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// jsonOf renders v for comparisons that ignore time zones and pointers.
func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
