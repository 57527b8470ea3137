package pgkit_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/ciampdp/pdp/pdp/internal/pgkit"
)

// TestOpenMigrations: a store's migrations run once per database, in
// order, after its DDL, also with openers racing; a later version adds
// only its own; a database newer than the opener is refused, and
// migrations without a store name are a mistake.
func TestOpenMigrations(t *testing.T) {
	_, dbURL := freshSchema(t)
	v1 := pgkit.Schema{LockKey: 0x70676b69746d6967, Name: "kit", DDL: `CREATE TABLE IF NOT EXISTS kit_m (id text PRIMARY KEY);`,
		Migrations: []string{`ALTER TABLE kit_m ADD COLUMN n int NOT NULL DEFAULT 0;`}} // not idempotent: fails if run twice
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			pool, err := pgkit.Open(t.Context(), dbURL, v1)
			if err != nil {
				t.Error(err)
				return
			}
			pool.Close()
		})
	}
	wg.Wait()
	v2 := v1
	v2.Migrations = append(v1.Migrations[:1:1], `ALTER TABLE kit_m ADD COLUMN m int NOT NULL DEFAULT 0;`)
	pool, err := pgkit.Open(t.Context(), dbURL, v2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var got string
	if err := pool.QueryRow(t.Context(), `SELECT string_agg(version::text, ',' ORDER BY version) FROM `+pgkit.MigrationsTable+` WHERE store = 'kit'`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "1,2" {
		t.Fatalf("versions recorded %s, want 1,2", got)
	}
	if _, err := pool.Exec(t.Context(), `INSERT INTO kit_m (id, n, m) VALUES ('a', 1, 2)`); err != nil {
		t.Fatalf("both migrations' columns: %v", err)
	}
	if _, err := pgkit.Open(t.Context(), dbURL, v1); err == nil || !strings.Contains(err.Error(), "newer than this PDP's 1") {
		t.Fatalf("an opener older than the tables: %v, want refused", err)
	}
	if _, err := pgkit.Open(t.Context(), dbURL, pgkit.Schema{LockKey: 1, DDL: "SELECT 1", Migrations: []string{"SELECT 1"}}); err == nil ||
		!strings.Contains(err.Error(), "needs a name") {
		t.Fatalf("migrations without a name: %v", err)
	}
}
