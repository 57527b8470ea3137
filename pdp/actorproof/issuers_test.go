package actorproof

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/jwtverify"
)

// issuerProver is a Prover trusting key for tokens of iss, on clk, bound
// to clients (nil: unbound) and single use in spent (nil: reusable).
func issuerProver(t testing.TB, iss string, key jose.JSONWebKey, clk *clock, clients map[string][]string, spent Spent) *Prover {
	t.Helper()
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{key.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := jwtverify.New(jwtverify.Config{JWKSFile: file, Issuer: iss, Audience: []string{audience}, Algorithms: []string{"ES256"}, Leeway: testLeeway},
		jwtverify.Deps{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return New(v, Options{Clients: clients, Spent: spent, Leeway: testLeeway})
}

// sameJTITwoIssuers proves, through two Provers of two issuers sharing
// spent, a token of each issuer with the same jti: each is accepted once
// and refused as a replay on its second use.
func sameJTITwoIssuers(t *testing.T, clk *clock, spent Spent, jti string) {
	t.Helper()
	type idp struct {
		iss string
		key jose.JSONWebKey
	}
	idps := []idp{{iss: "https://idp-a.example/"}, {iss: "https://idp-b.example/"}}
	tokens := make([]string, len(idps))
	provers := make([]*Prover, len(idps))
	for i := range idps {
		priv := newKey(t)
		idps[i].key = jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
		provers[i] = issuerProver(t, idps[i].iss, idps[i].key, clk, nil, spent)
		tokens[i] = sign(t, priv, map[string]any{"iss": idps[i].iss, "aud": audience, "sub": "alice",
			"iat": clk.now().Unix(), "exp": clk.now().Add(time.Minute).Unix(), "jti": jti})
	}
	for i, p := range provers {
		if err := p.Prove(WithToken(context.Background(), tokens[i]), "", SubjectType, "alice"); err != nil {
			t.Fatalf("%s: first use of jti %q: %v", idps[i].iss, jti, err)
		}
	}
	for i, p := range provers {
		err := p.Prove(WithToken(context.Background(), tokens[i]), "", SubjectType, "alice")
		if !errors.Is(err, ErrUnproven) || !strings.Contains(err.Error(), "already used") {
			t.Fatalf("%s: second use of jti %q: %v, want refused as already used", idps[i].iss, jti, err)
		}
	}
}

// TestSingleUseKeyedByIssuer: two issuers may issue the same jti; the
// memory store tells their tokens apart (each proves one change).
func TestSingleUseKeyedByIssuer(t *testing.T) {
	clk := &clock{t: time.Now()}
	sameJTITwoIssuers(t, clk, NewMemorySpent(10, clk.now), "shared-jti")
}

// TestPostgresSpentKeyedByIssuer: on PostgreSQL too, the same jti from
// two issuers is two uses, each refused on its second use.
func TestPostgresSpentKeyedByIssuer(t *testing.T) {
	clk := &clock{t: time.Now()}
	s, err := OpenPostgresSpent(t.Context(), freshSchema(t), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	sameJTITwoIssuers(t, clk, s, "shared-"+rand.Text())
}

// TestPostgresSpentMigratesOldTable: a table of a PDP that keyed uses by
// jti alone is migrated on open; its rows (issuer unknown) still hold
// their jti for every issuer until they expire, then new uses of the
// jti are per issuer; a second open migrates nothing again.
func TestPostgresSpentMigratesOldTable(t *testing.T) {
	dbURL := freshSchema(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	clk := &clock{t: time.Now()}
	// The table as the PDP before migration 1 created and filled it.
	if _, err := conn.Exec(ctx, spentDDL); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO pdp_actor_token_uses (jti, expires_at, used_at) VALUES ('old', $1, $2)`,
		clk.now().Add(time.Minute), clk.now()); err != nil {
		t.Fatal(err)
	}
	open := func() *PostgresSpent {
		s, err := OpenPostgresSpent(ctx, dbURL, clk.now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	s := open()
	spend := func(iss, jti string) bool {
		t.Helper()
		fresh, err := s.Spend(ctx, iss, jti, clk.now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return fresh
	}
	if spend("https://idp-a.example/", "old") || spend("https://idp-b.example/", "old") {
		t.Fatal("a jti used before the migration accepted again")
	}
	if !spend("https://idp-a.example/", "new") || !spend("https://idp-b.example/", "new") || spend("https://idp-a.example/", "new") {
		t.Fatal("a new jti is not one use per issuer")
	}
	clk.add(time.Minute + time.Second)
	if !spend("https://idp-a.example/", "old") || !spend("https://idp-b.example/", "old") {
		t.Fatal("an expired use from before the migration still holds its jti")
	}
	open() // reopened: nothing to migrate
	var versions []int
	rows, err := conn.Query(ctx, `SELECT version FROM pdp_schema_migrations WHERE store = 'actor_token_uses' ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	if versions, err = pgx.CollectRows(rows, pgx.RowTo[int]); err != nil {
		t.Fatal(err)
	}
	if len(versions) != len(spentMigrations) || versions[len(versions)-1] != len(spentMigrations) {
		t.Fatalf("versions recorded %v, want 1..%d once each", versions, len(spentMigrations))
	}
}

// freshSchema returns the test database's URL with search_path set to a
// new schema, dropped at cleanup.
func freshSchema(t *testing.T) string {
	t.Helper()
	base := os.Getenv("PDP_TEST_POSTGRES_URL")
	if base == "" {
		t.Skip("SKIPPED: PDP_TEST_POSTGRES_URL is not set (export PDP_TEST_POSTGRES_URL=$(scripts/postgres.sh start))")
	}
	schema := "actorproof_" + strings.ToLower(rand.Text()[:10])
	conn, err := pgx.Connect(t.Context(), base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, base); err == nil {
			_, _ = conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			_ = conn.Close(ctx)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}
