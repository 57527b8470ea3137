package signalledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciampdp/pdp/pdp/internal/pgkit"
	"github.com/ciampdp/pdp/pdp/signals"
)

// PostgresStore keeps the signal ledger in PostgreSQL, shared by many PDP
// replicas: every event in pdp_signal_events, append-only; the
// transmitter's jti is unique per event type (a replayed SET is refused
// by the database too). Appends take an advisory lock so that positions
// commit in order (a replica reading "position > head" skips nothing).
type PostgresStore struct {
	pool *pgxpool.Pool
}

var _ Store = (*PostgresStore)(nil)

const (
	pgSchemaLock = 0x7064707369677331 // "pdpsigs1"
	pgAppendLock = 0x7064707369677332 // "pdpsigs2"
)

const signalsDDL = `
CREATE TABLE IF NOT EXISTS pdp_signal_events (
	position    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	transmitter text NOT NULL,
	jti         text NOT NULL,
	type        text NOT NULL,
	entity      text NOT NULL,
	event       jsonb NOT NULL,
	received_at timestamptz NOT NULL,
	UNIQUE (transmitter, jti, type)
);
CREATE INDEX IF NOT EXISTS pdp_signal_events_entity ON pdp_signal_events (entity, position);
`

// OpenPostgres connects to the database at uri and creates the table if
// it is absent.
func OpenPostgres(ctx context.Context, uri string) (*PostgresStore, error) {
	pool, err := pgkit.Open(ctx, uri, pgkit.Schema{LockKey: pgSchemaLock, DDL: signalsDDL})
	if err != nil {
		return nil, fmt.Errorf("signals: %w", err)
	}
	return &PostgresStore{pool: pool}, nil
}

// Append implements Store: the events of one SET in one transaction.
func (s *PostgresStore) Append(ctx context.Context, events []signals.Event) ([]signals.Event, error) {
	if len(events) == 0 {
		return nil, nil
	}
	out := make([]signals.Event, 0, len(events))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out = out[:0]
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(pgAppendLock)); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM pdp_signal_events WHERE transmitter = $1 AND jti = $2",
			events[0].Transmitter, events[0].JTI).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%s %s: %w", events[0].Transmitter, events[0].JTI, ErrDuplicate)
		}
		for _, e := range events {
			e.Position = 0
			body, err := json.Marshal(e)
			if err != nil {
				return err
			}
			var pos int64
			if err := tx.QueryRow(ctx, `INSERT INTO pdp_signal_events (transmitter, jti, type, entity, event, received_at)
				VALUES ($1, $2, $3, $4, $5, $6) RETURNING position`,
				e.Transmitter, e.JTI, e.Type, e.Entity, body, e.ReceivedAt).Scan(&pos); err != nil {
				return err
			}
			e.Position = pos
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return nil, fmt.Errorf("%s %s: %w", events[0].Transmitter, events[0].JTI, ErrDuplicate)
		}
		return nil, fmt.Errorf("signals: postgres append: %w", err)
	}
	return out, nil
}

// Since implements Store.
func (s *PostgresStore) Since(ctx context.Context, after int64) ([]signals.Event, error) {
	rows, err := s.pool.Query(ctx, "SELECT position, event FROM pdp_signal_events WHERE position > $1 ORDER BY position", after)
	if err != nil {
		return nil, fmt.Errorf("signals: postgres read: %w", err)
	}
	defer rows.Close()
	var out []signals.Event
	for rows.Next() {
		var (
			pos  int64
			body []byte
		)
		if err := rows.Scan(&pos, &body); err != nil {
			return nil, err
		}
		var e signals.Event
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, fmt.Errorf("signals: event at %d: %w", pos, err)
		}
		e.Position = pos
		out = append(out, e)
	}
	return out, rows.Err()
}

// Close implements Store.
func (s *PostgresStore) Close() error {
	s.pool.Close()
	return nil
}
