// Package pgkit owns how the PostgreSQL stores connect: one pool per store,
// with the store's tables created once and its versioned migrations applied
// once, under the store's advisory lock, so that replicas starting together
// never race on the DDL.
package pgkit

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema is what a store needs in the database.
type Schema struct {
	// LockKey is the store's pg_advisory_xact_lock key: openers of the same
	// tables (any version of the PDP) must use the same key.
	LockKey int64
	// DDL creates what is absent; it runs in one transaction, holding the
	// lock, on every Open. Each statement must be idempotent (IF NOT EXISTS).
	DDL string
	// Present, when set, is a query answering whether the store's tables
	// exist: if they do, Open runs neither DDL nor migrations (a reader
	// that must not change the tables of replicas of another version).
	Present string
	// Params are run-time parameters set on every connection of the pool
	// (e.g. idle_in_transaction_session_timeout); optional.
	Params map[string]string
	// Name names the store in MigrationsTable; required with Migrations.
	Name string
	// Migrations change what DDL created, in order: migration i is version
	// i+1 of the store's tables. Each runs once per database, after DDL, in
	// the same transaction and under the same lock, and its version is
	// recorded in MigrationsTable. Append only: never edit or reorder one
	// that has shipped.
	Migrations []string
}

// MigrationsTable records the versions applied, per store.
const MigrationsTable = "pdp_schema_migrations"

// migrationsLock is the pg_advisory_xact_lock key every store takes, after
// its own, before creating MigrationsTable: stores hold different locks,
// and two CREATE TABLE IF NOT EXISTS of one table racing fail on the
// catalog's unique index. No store's lock is taken while holding it.
const migrationsLock = 0x7064706d69677274 // "pdpmigrt"

const migrationsDDL = `CREATE TABLE IF NOT EXISTS ` + MigrationsTable + ` (
	store      text NOT NULL,
	version    int NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (store, version)
)`

// Open connects to the database at url (a pgx/libpq URL) and runs s.DDL,
// then the migrations not applied yet, under s.LockKey. The errors read
// "postgres: …", "postgres: create tables: …" and "postgres: migrate …",
// for the store to prefix with its name.
func Open(ctx context.Context, url string, s Schema) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	for k, v := range s.Params {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	if len(s.Migrations) > 0 && s.Name == "" {
		return nil, errors.New("postgres: a schema with migrations needs a name")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.LockKey); err != nil {
			return err
		}
		if s.Present != "" {
			var present bool
			if err := tx.QueryRow(ctx, s.Present).Scan(&present); err != nil {
				return fmt.Errorf("create tables: %w", err)
			}
			if present {
				return nil
			}
		}
		if _, err := tx.Exec(ctx, s.DDL); err != nil {
			return fmt.Errorf("create tables: %w", err)
		}
		return migrate(ctx, tx, s)
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return pool, nil
}

// migrate applies the migrations of s above the version recorded. It
// runs under the store's lock, so two openers never apply one twice.
func migrate(ctx context.Context, tx pgx.Tx, s Schema) error {
	if len(s.Migrations) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationsLock)); err != nil {
		return fmt.Errorf("migrate %s: %w", s.Name, err)
	}
	if _, err := tx.Exec(ctx, migrationsDDL); err != nil {
		return fmt.Errorf("migrate %s: %w", s.Name, err)
	}
	var at int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+MigrationsTable+" WHERE store = $1", s.Name).Scan(&at); err != nil {
		return fmt.Errorf("migrate %s: %w", s.Name, err)
	}
	if at > len(s.Migrations) {
		return fmt.Errorf("migrate %s: the tables are at version %d, newer than this PDP's %d: run a newer PDP", s.Name, at, len(s.Migrations))
	}
	for v := at + 1; v <= len(s.Migrations); v++ {
		if _, err := tx.Exec(ctx, s.Migrations[v-1]); err != nil {
			return fmt.Errorf("migrate %s to version %d: %w", s.Name, v, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+MigrationsTable+" (store, version) VALUES ($1, $2)", s.Name, v); err != nil {
			return fmt.Errorf("migrate %s to version %d: %w", s.Name, v, err)
		}
	}
	return nil
}
