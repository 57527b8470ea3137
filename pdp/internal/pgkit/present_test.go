package pgkit_test

import (
	"testing"

	"github.com/ciampdp/pdp/pdp/internal/pgkit"
)

// TestOpenPresentSkipsDDL: with Present answering true, Open runs
// neither the DDL nor the migrations (a reader beside replicas of another
// version); answering false, it runs both.
func TestOpenPresentSkipsDDL(t *testing.T) {
	_, dbURL := freshSchema(t)
	for _, tc := range []struct {
		present string
		fails   bool
	}{
		{present: "SELECT true", fails: false},
		{present: "SELECT false", fails: true},
		{present: "", fails: true},
	} {
		s := pgkit.Schema{LockKey: 0x70676b6974707273, Present: tc.present, Name: "present",
			DDL: "SELECT 1/0", Migrations: []string{"SELECT 1/0"}}
		pool, err := pgkit.Open(t.Context(), dbURL, s)
		if (err != nil) != tc.fails {
			t.Fatalf("present %q: %v, want failing %v", tc.present, err, tc.fails)
		}
		if pool != nil {
			pool.Close()
		}
	}
}
