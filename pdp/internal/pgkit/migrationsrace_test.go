package pgkit_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/ciampdp/pdp/pdp/internal/pgkit"
)

// TestOpenMigrationsTableRace: stores with different locks opening
// together on a database without the migrations table all create it
// (CREATE TABLE IF NOT EXISTS alone races on the catalog's unique index).
func TestOpenMigrationsTableRace(t *testing.T) {
	for round := range 5 {
		_, dbURL := freshSchema(t)
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				s := pgkit.Schema{LockKey: int64(0x70676b6974720000 + i), Name: fmt.Sprintf("race%d", i),
					DDL:        fmt.Sprintf(`CREATE TABLE IF NOT EXISTS race_%d (id text PRIMARY KEY);`, i),
					Migrations: []string{fmt.Sprintf(`ALTER TABLE race_%d ADD COLUMN n int;`, i)}}
				pool, err := pgkit.Open(t.Context(), dbURL, s)
				if err != nil {
					t.Errorf("round %d, store %d: %v", round, i, err)
					return
				}
				pool.Close()
			})
		}
		wg.Wait()
	}
}
