package revalidation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/internal/jsonl"
	"github.com/ciampdp/pdp/pdp/internal/pgkit"
)

// ErrCorrupt: a stored revalidation cannot be read.
var ErrCorrupt = errors.New("revalidation: corrupt revalidation store")

// Store keeps revalidations, appended, never changed. Implementations are
// safe for concurrent use.
type Store interface {
	// Append stores r durably (fsynced, committed) at the next position.
	Append(ctx context.Context, r Revalidation) (Revalidation, error)
	// After returns the revalidations above a position, in order.
	After(ctx context.Context, pos int64) ([]Revalidation, error)
	Close() error
}

// FileStore keeps revalidations in a JSON-lines file owned by one process.
type FileStore struct {
	mu   sync.Mutex
	f    *jsonl.File
	all  []Revalidation
	head int64
}

var (
	_ Store = (*FileStore)(nil)
	_ Store = (*PostgresStore)(nil)
)

// OpenFile opens (creating it) the revalidations file at path.
func OpenFile(path string, log *slog.Logger) (*FileStore, error) {
	s := &FileStore{}
	f, err := jsonl.Open(path, jsonl.Options{Logger: log, Corrupt: ErrCorrupt}, func(b []byte) error {
		r, err := dormancy.DecodeRevalidation(b)
		if err != nil {
			return err
		}
		if r.Position <= s.head {
			return jsonl.Fatal(fmt.Errorf("position %d after %d", r.Position, s.head))
		}
		s.head = r.Position
		s.all = append(s.all, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dormancy: open %s: %w", path, err)
	}
	s.f = f
	return s, nil
}

// Append implements Store.
func (s *FileStore) Append(ctx context.Context, r Revalidation) (Revalidation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Position = s.head + 1
	b, err := json.Marshal(r)
	if err != nil {
		return Revalidation{}, fmt.Errorf("dormancy: encode revalidation: %w", err)
	}
	err = s.f.Append(b)
	if err != nil && !errors.Is(err, jsonl.ErrKeptInFile) {
		return Revalidation{}, fmt.Errorf("dormancy: append revalidation: %w", err)
	}
	// Written, or kept in the file although its fsync failed (held in
	// the page cache, read back from the file; it may not survive a
	// crash, and the start-up check catches that): After holds it, so
	// the service's read-back after the failed append finds it rather than
	// call it not applied.
	s.head = r.Position
	s.all = append(s.all, r)
	if err != nil {
		return Revalidation{}, fmt.Errorf("dormancy: append revalidation: %w", err)
	}
	return r, nil
}

// After implements Store.
func (s *FileStore) After(ctx context.Context, pos int64) ([]Revalidation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Revalidation
	for _, r := range s.all {
		if r.Position > pos {
			out = append(out, r)
		}
	}
	return out, nil
}

// Close implements Store.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Close()
}

// PostgresStore keeps revalidations in pdp_dormancy_revalidations, shared
// by every replica. Appends take an advisory lock so that positions commit
// in order: a replica reading "position > head" skips nothing (a bigserial
// alone hands out 10 to a slow writer and 11 to a fast one, and a reader
// that saw 11 never reads 10).
type PostgresStore struct{ pool *pgxpool.Pool }

const (
	pgSchemaLock = 0x646f726d616e6379 // "dormancy"
	pgAppendLock = 0x646f726d72766131 // "dormrva1"
)

const pgDDL = `
CREATE TABLE IF NOT EXISTS pdp_dormancy_revalidations (
	position bigserial PRIMARY KEY,
	id text NOT NULL UNIQUE,
	body jsonb NOT NULL
);`

// OpenPostgres connects to the database and creates the table if absent.
func OpenPostgres(ctx context.Context, url string) (*PostgresStore, error) {
	pool, err := pgkit.Open(ctx, url, pgkit.Schema{LockKey: pgSchemaLock, DDL: pgDDL})
	if err != nil {
		return nil, fmt.Errorf("dormancy: %w", err)
	}
	return &PostgresStore{pool: pool}, nil
}

// Append implements Store. One statement (its own transaction): take the
// append lock, then insert (the position is drawn under the lock), so
// positions commit in the order they are drawn.
func (s *PostgresStore) Append(ctx context.Context, r Revalidation) (Revalidation, error) {
	r.Position = 0
	b, err := json.Marshal(r)
	if err != nil {
		return Revalidation{}, fmt.Errorf("dormancy: encode revalidation: %w", err)
	}
	if err := s.pool.QueryRow(ctx, `WITH l AS (SELECT pg_advisory_xact_lock($1::bigint))
		INSERT INTO pdp_dormancy_revalidations (id, body)
		SELECT $2::text, $3::jsonb FROM l
		RETURNING position`,
		int64(pgAppendLock), r.ID, b).Scan(&r.Position); err != nil {
		return Revalidation{}, fmt.Errorf("dormancy: postgres append revalidation: %w", err)
	}
	return r, nil
}

// After implements Store.
func (s *PostgresStore) After(ctx context.Context, pos int64) ([]Revalidation, error) {
	rows, err := s.pool.Query(ctx, `SELECT position, body FROM pdp_dormancy_revalidations WHERE position > $1 ORDER BY position`, pos)
	if err != nil {
		return nil, fmt.Errorf("dormancy: postgres revalidations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Revalidation, error) {
		var (
			p int64
			b []byte
		)
		if err := row.Scan(&p, &b); err != nil {
			return Revalidation{}, err
		}
		r, err := dormancy.DecodeRevalidation(b)
		r.Position = p
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("dormancy: postgres revalidations: %w", err)
	}
	return out, nil
}

// Close implements Store.
func (s *PostgresStore) Close() error { s.pool.Close(); return nil }
