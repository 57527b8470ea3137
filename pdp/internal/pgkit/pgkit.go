// Package pgkit owns how the PostgreSQL stores connect: one pool per store,
// with the store's tables created once, under the store's advisory lock, so
// that replicas starting together never race on the DDL.
package pgkit

import (
	"context"
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
	// Params are run-time parameters set on every connection of the pool
	// (e.g. idle_in_transaction_session_timeout); optional.
	Params map[string]string
}

// Open connects to the database at url (a pgx/libpq URL) and runs s.DDL
// under s.LockKey. The errors read "postgres: …" and "postgres: create
// tables: …", for the store to prefix with its name.
func Open(ctx context.Context, url string, s Schema) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	for k, v := range s.Params {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.LockKey); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, s.DDL)
		return err
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: create tables: %w", err)
	}
	return pool, nil
}
