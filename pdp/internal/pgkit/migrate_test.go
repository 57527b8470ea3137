package pgkit_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/internal/pgkit"
)

// Versioned migrations run once each, in order, after the DDL; a failed
// one fails Open and applies nothing; a database migrated further than
// the opener knows is refused.
func TestMigrationsRunOnce(t *testing.T) {
	schema, dbURL := freshSchema(t)
	ran := map[int]int{}
	mig := func(v int, fail bool) pgkit.Migration {
		return pgkit.Migration{Version: v, Name: "m", Up: func(ctx context.Context, tx pgx.Tx) error {
			ran[v]++
			if _, err := tx.Exec(ctx, "INSERT INTO steps (v) VALUES ($1)", v); err != nil {
				return err
			}
			if fail {
				return errors.New("boom")
			}
			return nil
		}}
	}
	open := func(ms ...pgkit.Migration) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pool, err := pgkit.Open(ctx, dbURL, pgkit.Schema{LockKey: 0x6d6967726174, DDL: "CREATE TABLE IF NOT EXISTS steps (v int)",
			Migrations: ms, Versions: schema + ".versions", Store: "test"})
		if err == nil {
			pool.Close()
		}
		return err
	}
	version := func() int {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var v int
		if err := conn.QueryRow(ctx, "SELECT version FROM versions WHERE store = 'test'").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, step := range []struct {
		name    string
		ms      []pgkit.Migration
		wantErr string
		version int
		ran     map[int]int
	}{
		{"first open runs both", []pgkit.Migration{mig(1, false), mig(2, false)}, "", 2, map[int]int{1: 1, 2: 1}},
		{"second open runs none", []pgkit.Migration{mig(1, false), mig(2, false)}, "", 2, map[int]int{1: 1, 2: 1}},
		{"a new one runs alone", []pgkit.Migration{mig(1, false), mig(2, false), mig(3, false)}, "", 3, map[int]int{1: 1, 2: 1, 3: 1}},
		{"a failing one fails open", []pgkit.Migration{mig(1, false), mig(2, false), mig(3, false), mig(4, true)}, "boom", 3, map[int]int{1: 1, 2: 1, 3: 1, 4: 1}},
		{"an older opener is refused", []pgkit.Migration{mig(1, false)}, "newer", 3, map[int]int{1: 1, 2: 1, 3: 1, 4: 1}},
		{"versions out of order", []pgkit.Migration{mig(2, false), mig(1, false)}, "not after", 3, map[int]int{1: 1, 2: 1, 3: 1, 4: 1}},
	} {
		err := open(step.ms...)
		switch {
		case step.wantErr == "" && err != nil:
			t.Fatalf("%s: %v", step.name, err)
		case step.wantErr != "" && (err == nil || !strings.Contains(err.Error(), step.wantErr)):
			t.Fatalf("%s: %v, want an error with %q", step.name, err, step.wantErr)
		}
		if step.wantErr == "newer" && !errors.Is(err, pgkit.ErrNewerSchema) {
			t.Fatalf("%s: %v is not ErrNewerSchema", step.name, err)
		}
		if v := version(); v != step.version {
			t.Fatalf("%s: version %d, want %d", step.name, v, step.version)
		}
		for v, n := range step.ran {
			if ran[v] != n {
				t.Fatalf("%s: migration %d ran %d times, want %d (%v)", step.name, v, ran[v], n, ran)
			}
		}
	}
}
