package delegation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgEnv names the variable that points the tests at PostgreSQL.
const pgEnv = "PDP_TEST_POSTGRES_URL"

func TestMain(m *testing.M) {
	if os.Getenv(pgEnv) == "" {
		fmt.Fprintf(os.Stderr, "\n*** delegation: %s is not set: every PostgreSQL test is SKIPPED.\n"+
			"*** Start one with: export %s=$(scripts/postgres.sh start)\n\n", pgEnv, pgEnv)
	}
	os.Exit(m.Run())
}

// storeKind is one Store implementation; the behaviour tests run on each.
type storeKind struct {
	name string
	// open returns a fresh store (closed at cleanup) and a suffix unique to
	// the test, to put in every id and party so that tests sharing a
	// database do not see each other's records.
	open func(t *testing.T) (Store, string)
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

func openFileT(t *testing.T) (Store, string) {
	t.Helper()
	s, err := OpenFile(filepath.Join(t.TempDir(), "state", "delegations.jsonl"))
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

// openPostgresT opens a PostgresStore on the shared test database; at
// cleanup it deletes the rows whose id ends with the test's suffix.
func openPostgresT(t *testing.T) (Store, string) {
	t.Helper()
	uri := os.Getenv(pgEnv)
	if uri == "" {
		t.Skipf("SKIPPED: %s not set: the PostgreSQL store is not tested (export %s=$(scripts/postgres.sh start))", pgEnv, pgEnv)
	}
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
		for _, table := range []string{"pdp_delegations", "pdp_delegation_events"} {
			if _, err := conn.Exec(ctx, "DELETE FROM "+table+" WHERE id LIKE '%' || $1", sfx); err != nil {
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

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// projection is one call of the recording projector.
type projection struct {
	ID     string
	Status Status
}

// recordingProjector stands in for SpiceDB in the rule tests (the real one
// is tested in spicedb_test.go): it records every call and fails on demand.
type recordingProjector struct {
	mu    sync.Mutex
	calls []projection
	fail  atomic.Bool
	n     atomic.Int64
}

func (p *recordingProjector) Project(_ context.Context, d Delegation) (string, error) {
	if p.fail.Load() {
		return "", fmt.Errorf("relationship store unavailable")
	}
	p.mu.Lock()
	p.calls = append(p.calls, projection{d.ID, d.Status})
	p.mu.Unlock()
	return fmt.Sprintf("token-%d", p.n.Add(1)), nil
}

// last returns the status of the latest projection of id ("" if none).
func (p *recordingProjector) last(id string) Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.calls) - 1; i >= 0; i-- {
		if p.calls[i].ID == id {
			return p.calls[i].Status
		}
	}
	return ""
}

// env is a Service on a store with a fake clock and a recording projector.
type env struct {
	t     testing.TB
	st    Store
	svc   *Service
	clock *fakeClock
	proj  *recordingProjector
	sfx   string
	ids   atomic.Int64
}

// cast's "today" in the tests.
var today = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func newEnv(t testing.TB, st Store, sfx string) *env {
	e := &env{t: t, st: st, clock: &fakeClock{t: today}, proj: &recordingProjector{}, sfx: sfx}
	e.svc = NewService(Config{
		Store: st, Projector: e.proj, Now: e.clock.Now,
		NewID:                func() string { return fmt.Sprintf("dlg-%d%s", e.ids.Add(1), sfx) },
		RegisterApplications: []string{register.Application},
	})
	return e
}

func (e *env) user(id string) Ref { return Ref{Type: "user", ID: id + e.sfx} }
func (e *env) org(id string) Ref  { return Ref{Type: "organisation", ID: id + e.sfx} }
func (e *env) acc(id string) Ref  { return Ref{Type: "account", ID: id + e.sfx} }

// as is an actor of the mobile app for the party.
func as(r Ref) Actor { return Actor{Application: "mobile-banking", Subject: r} }

// register is the civil/commercial register operator.
var register = Actor{Application: "register-feed", Subject: Ref{Type: "service", ID: "register"}}

func amount(f float64) *float64 { return &f }

func (e *env) offer(r OfferRequest) Delegation {
	e.t.Helper()
	d, _, err := e.svc.Offer(context.Background(), r)
	if err != nil {
		e.t.Fatalf("Offer(%s -> %s): %v", r.Principal, r.Agent, err)
	}
	return d
}

func (e *env) accept(id string, by Ref) Delegation {
	e.t.Helper()
	d, _, err := e.svc.Accept(context.Background(), id, as(by))
	if err != nil {
		e.t.Fatalf("Accept(%s): %v", id, err)
	}
	return d
}

func (e *env) get(id string) Delegation {
	e.t.Helper()
	d, err := e.st.Get(context.Background(), id)
	if err != nil {
		e.t.Fatalf("Get(%s): %v", id, err)
	}
	return d
}

// poa is an accepted power of attorney from principal to agent.
func (e *env) poa(principal, agent Ref, scope []string, maxDepth int) Delegation {
	e.t.Helper()
	d := e.offer(OfferRequest{
		By: as(principal), Principal: principal, Agent: agent, Basis: BasisPowerOfAttorney,
		Source: SourceSelfDeclared, Scope: scope, ValidFrom: date(2026, 1, 1), ValidUntil: date(2030, 12, 31),
		MaxDepth: maxDepth,
	})
	return e.accept(d.ID, agent)
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
