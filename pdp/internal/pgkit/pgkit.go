// Package pgkit owns how the PostgreSQL stores connect: one pool per store,
// with the store's tables created and migrated once, under the store's
// advisory lock, so that replicas starting together never race on the DDL.
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
	// Params are run-time parameters set on every connection of the pool
	// (e.g. idle_in_transaction_session_timeout); optional.
	Params map[string]string
	// Migrations change what DDL created in ways IF NOT EXISTS cannot
	// (moving rows to a new layout): each runs once per database, in
	// Version order, after DDL and in its transaction. Optional; with
	// them, Versions and Store are required.
	Migrations []Migration
	// Versions is the table (schema-qualified and quoted as needed) that
	// records each store's migration version; created if absent.
	Versions string
	// Store is the store's name in Versions.
	Store string
	// NoMigrate runs DDL but not Migrations, for readers that must not
	// change the layout under replicas of an earlier version; the store
	// then reads the layout it finds (Version).
	NoMigrate bool
}

// Version is the migration version of store recorded in the versions table
// (0 when the table or the store's row is absent).
func Version(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, versions, store string) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", versions).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := q.QueryRow(ctx, "SELECT version FROM "+versions+" WHERE store = $1", store).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// ErrNewerSchema is returned by Open when a newer PDP has migrated the
// store's tables past the migrations this one knows.
var ErrNewerSchema = errors.New("tables migrated by a newer version")

// Migration is one versioned change of a store's tables.
type Migration struct {
	Version int // 1, 2, …; the database records the highest applied
	Name    string
	// Up applies the change. It runs holding the store's advisory lock,
	// in the transaction that created the tables, so a failure leaves the
	// database as it was and fails Open.
	Up func(ctx context.Context, tx pgx.Tx) error
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
		if _, err := tx.Exec(ctx, s.DDL); err != nil {
			return err
		}
		return migrate(ctx, tx, s)
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: create tables: %w", err)
	}
	return pool, nil
}

// migrate applies the migrations the database has not had yet.
func migrate(ctx context.Context, tx pgx.Tx, s Schema) error {
	if len(s.Migrations) == 0 || s.NoMigrate {
		return nil
	}
	if s.Versions == "" || s.Store == "" {
		return fmt.Errorf("migrations without a versions table or store name")
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.Versions+` (
	store       text PRIMARY KEY,
	version     int NOT NULL,
	migrated_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return err
	}
	var cur int
	err := tx.QueryRow(ctx, `SELECT version FROM `+s.Versions+` WHERE store = $1`, s.Store).Scan(&cur)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("read the %s migration version: %w", s.Store, err)
	}
	last := 0
	for _, m := range s.Migrations {
		if m.Version <= last {
			return fmt.Errorf("%s migration %q: version %d not after %d", s.Store, m.Name, m.Version, last)
		}
		last = m.Version
		if m.Version <= cur {
			continue
		}
		if err := m.Up(ctx, tx); err != nil {
			return fmt.Errorf("%s migration %d (%s): %w", s.Store, m.Version, m.Name, err)
		}
	}
	switch {
	case cur > last:
		return fmt.Errorf("%w: the %s tables are at version %d, this PDP knows up to %d (upgrade it)", ErrNewerSchema, s.Store, cur, last)
	case cur == last:
		return nil
	}
	_, err = tx.Exec(ctx, `INSERT INTO `+s.Versions+` (store, version) VALUES ($1, $2)
ON CONFLICT (store) DO UPDATE SET version = excluded.version, migrated_at = now()`, s.Store, last)
	return err
}
