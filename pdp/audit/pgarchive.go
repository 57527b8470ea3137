package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciampdp/pdp/pdp/internal/pgkit"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/trail/pgtrail"
)

// PostgresArchive keeps the served policy versions in PostgreSQL, beside
// a PostgreSQL trail, so that every replica archives into, and every
// auditor replays from, the same place. Rows are written once (insert or
// nothing) and checked against their hash when read.
type PostgresArchive struct {
	pool   *pgxpool.Pool
	table  string
	mu     sync.Mutex
	loaded map[string]*policy.Bundle
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// OpenPostgresArchive connects and creates the table (in schema, "" for
// public) when absent.
func OpenPostgresArchive(ctx context.Context, url, schema string) (*PostgresArchive, error) {
	if schema == "" {
		schema = "public"
	}
	if !schemaName.MatchString(schema) {
		return nil, fmt.Errorf("audit: schema %q is not a lower-case SQL identifier", schema)
	}
	table := schema + ".trail_policy_versions"
	// The trail's lock: the trail creates the same schema.
	pool, err := pgkit.Open(ctx, url, pgkit.Schema{LockKey: pgtrail.SchemaLock, DDL: `CREATE SCHEMA IF NOT EXISTS ` + schema + `;
CREATE TABLE IF NOT EXISTS ` + table + ` (hash text PRIMARY KEY, version jsonb NOT NULL, files jsonb NOT NULL, archived_at timestamptz NOT NULL DEFAULT now())`})
	if err != nil {
		return nil, fmt.Errorf("audit: policy archive: %w", err)
	}
	return &PostgresArchive{pool: pool, table: table, loaded: map[string]*policy.Bundle{}}, nil
}

// Close closes the connections.
func (a *PostgresArchive) Close() { a.pool.Close() }

// Put archives b's version unless it is there already; committed on return.
func (a *PostgresArchive) Put(b *policy.Bundle) error {
	v := b.Version()
	files := make(map[string]string, len(b.Sources()))
	for name, data := range b.Sources() {
		files[name] = string(data)
	}
	vj, _ := json.Marshal(v)
	fj, err := json.Marshal(files)
	if err != nil {
		return fmt.Errorf("audit: archive %s: %w", v.Hash, err)
	}
	_, err = a.pool.Exec(context.Background(), `INSERT INTO `+a.table+` (hash, version, files) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING`, v.Hash, vj, fj)
	if err != nil {
		return fmt.Errorf("audit: archive %s: %w", v.Hash, err)
	}
	return nil
}

// Get rebuilds the bundle of version hash.
func (a *PostgresArchive) Get(hash string) (*policy.Bundle, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if b, ok := a.loaded[hash]; ok {
		return b, nil
	}
	var vj, fj []byte
	err := a.pool.QueryRow(context.Background(), `SELECT version, files FROM `+a.table+` WHERE hash = $1`, hash).Scan(&vj, &fj)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s (looked in %s)", ErrNotArchived, hash, a.table)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: policy archive: %w", err)
	}
	var ar archived
	if err := json.Unmarshal(vj, &ar.Version); err != nil {
		return nil, fmt.Errorf("audit: policy archive %s: %w", hash, err)
	}
	if err := json.Unmarshal(fj, &ar.Files); err != nil {
		return nil, fmt.Errorf("audit: policy archive %s: %w", hash, err)
	}
	b, err := ar.bundle(hash)
	if err != nil {
		return nil, err
	}
	a.loaded[hash] = b
	return b, nil
}
