package consent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciampdp/pdp/pdp/internal/pgkit"
)

// PostgresStore keeps the ledger in PostgreSQL, shared by many PDP
// replicas: every event, append-only, in pdp_consent_events (its position
// an identity column: gaps are possible, order is what matters) and the
// last activity of each subject in pdp_consent_activity.
//
// Appends take a transaction-scoped advisory lock before the identity value
// is drawn, so that events commit in position order: a reader that sees
// position p sees every committed position below p, and a replica that
// reads "position > head" never skips an event committed late. It costs
// one serialised commit per append across the cluster.
type PostgresStore struct {
	pool *pgxpool.Pool
	// activityChunk, when set (tests), bounds the rows of one
	// SetActivities statement below the default activityChunk.
	activityChunk int
}

var _ Store = (*PostgresStore)(nil)

const (
	// schemaLock serialises the table creation of concurrent openers.
	schemaLock = 0x706470636f6e7331 // "pdpcons1"
	// appendLock orders appends (see PostgresStore).
	appendLock = 0x706470636f6e7332 // "pdpcons2"
)

const consentDDL = `
CREATE TABLE IF NOT EXISTS pdp_consent_events (
	position    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id          text NOT NULL UNIQUE,
	subject     text NOT NULL,
	purpose     text NOT NULL,
	event       jsonb NOT NULL,
	recorded_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS pdp_consent_events_subject ON pdp_consent_events (subject, position);
CREATE TABLE IF NOT EXISTS pdp_consent_activity (
	subject     text PRIMARY KEY,
	last_active timestamptz NOT NULL
);
`

// OpenPostgres connects to the database at uri (a pgx/libpq URI) and
// creates the tables and the index if they are absent.
func OpenPostgres(ctx context.Context, uri string) (*PostgresStore, error) {
	pool, err := pgkit.Open(ctx, uri, pgkit.Schema{LockKey: schemaLock, DDL: consentDDL})
	if err != nil {
		return nil, fmt.Errorf("consent: %w", err)
	}
	return &PostgresStore{pool: pool}, nil
}

// Append implements Store. One statement (its own transaction): take the
// append lock, insert, return the position.
func (s *PostgresStore) Append(ctx context.Context, e Event) (Event, error) {
	if err := checkStorable(e); err != nil {
		return Event{}, err
	}
	e = cloneEvent(e)
	if e.RecordedAt.IsZero() {
		e.RecordedAt = time.Now()
	}
	e.RecordedAt = storedTime(e.RecordedAt)
	e.Position = 0 // the column is the truth
	body, err := json.Marshal(e)
	if err != nil {
		return Event{}, fmt.Errorf("consent event %s: encode: %w", e.ID, err)
	}
	err = s.pool.QueryRow(ctx, `WITH l AS (SELECT pg_advisory_xact_lock($1::bigint))
		INSERT INTO pdp_consent_events (id, subject, purpose, event, recorded_at)
		SELECT $2::text, $3::text, $4::text, $5::jsonb, $6::timestamptz FROM l
		ON CONFLICT (id) DO NOTHING
		RETURNING position`,
		int64(appendLock), e.ID, e.Subject.String(), e.Purpose, body, e.RecordedAt).Scan(&e.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return Event{}, fmt.Errorf("consent event %s: %w", e.ID, ErrExists)
	}
	if err != nil {
		return Event{}, fmt.Errorf("consent event %s: postgres append: %w", e.ID, err)
	}
	return e, nil
}

// Events implements Store.
func (s *PostgresStore) Events(ctx context.Context, subject Ref) ([]Event, error) {
	return s.query(ctx, "events", `SELECT position, event FROM pdp_consent_events
		WHERE subject = $1 ORDER BY position`, subject.String())
}

// EventsAfter implements Scanner.
func (s *PostgresStore) EventsAfter(ctx context.Context, after int64, limit int) ([]Event, error) {
	return s.query(ctx, "events after", `SELECT position, event FROM pdp_consent_events
		WHERE position > $1 ORDER BY position LIMIT $2`, after, max(limit, 0))
}

// Event implements Store.
func (s *PostgresStore) Event(ctx context.Context, id string) (Event, error) {
	es, err := s.query(ctx, "event", `SELECT position, event FROM pdp_consent_events WHERE id = $1`, id)
	if err != nil {
		return Event{}, err
	}
	if len(es) == 0 {
		return Event{}, fmt.Errorf("consent event %s: %w", id, ErrNotFound)
	}
	return es[0], nil
}

func (s *PostgresStore) query(ctx context.Context, op, sql string, args ...any) ([]Event, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("consent: postgres %s: %w", op, err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var (
			pos  int64
			body []byte
			e    Event
		)
		if err := rows.Scan(&pos, &body); err != nil {
			return nil, fmt.Errorf("consent: postgres %s: %w", op, err)
		}
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, fmt.Errorf("consent: postgres %s: event at position %d: %w", op, pos, err)
		}
		e.Position = pos
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("consent: postgres %s: %w", op, err)
	}
	return out, nil
}

// Head implements Store: one indexed read of the primary key.
func (s *PostgresStore) Head(ctx context.Context) (int64, error) {
	var head int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(position), 0) FROM pdp_consent_events`).Scan(&head); err != nil {
		return 0, fmt.Errorf("consent: postgres head: %w", err)
	}
	return head, nil
}

// SetActivity implements Store (an upsert keeping the later time).
func (s *PostgresStore) SetActivity(ctx context.Context, subject Ref, at time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO pdp_consent_activity (subject, last_active) VALUES ($1, $2)
		ON CONFLICT (subject) DO UPDATE
		SET last_active = greatest(pdp_consent_activity.last_active, excluded.last_active)`,
		subject.String(), storedTime(at))
	if err != nil {
		return fmt.Errorf("consent: postgres set activity of %s: %w", subject, err)
	}
	return nil
}

// Activity implements Store.
func (s *PostgresStore) Activity(ctx context.Context, subject Ref) (time.Time, bool, error) {
	var at time.Time
	err := s.pool.QueryRow(ctx, `SELECT last_active FROM pdp_consent_activity WHERE subject = $1`,
		subject.String()).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("consent: postgres activity of %s: %w", subject, err)
	}
	return at.UTC(), true, nil
}

// Activities implements Store in one query.
func (s *PostgresStore) Activities(ctx context.Context, subjects []Ref) (map[Ref]time.Time, error) {
	if len(subjects) == 0 {
		return map[Ref]time.Time{}, nil
	}
	names := make([]string, len(subjects))
	for i, r := range subjects {
		names[i] = r.String()
	}
	return s.activity(ctx, `SELECT subject, last_active FROM pdp_consent_activity WHERE subject = ANY($1::text[])`, names)
}

// AllActivity implements Scanner.
func (s *PostgresStore) AllActivity(ctx context.Context) (map[Ref]time.Time, error) {
	return s.activity(ctx, `SELECT subject, last_active FROM pdp_consent_activity`)
}

// activity reads (subject, last_active) rows.
func (s *PostgresStore) activity(ctx context.Context, query string, args ...any) (map[Ref]time.Time, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("consent: postgres activity: %w", err)
	}
	defer rows.Close()
	out := map[Ref]time.Time{}
	for rows.Next() {
		var (
			subject string
			at      time.Time
		)
		if err := rows.Scan(&subject, &at); err != nil {
			return nil, fmt.Errorf("consent: postgres activity: %w", err)
		}
		ref, err := ParseRef(subject)
		if err != nil {
			return nil, err
		}
		out[ref] = at.UTC()
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("consent: postgres activity: %w", err)
	}
	return out, nil
}

// Close closes the connection pool.
func (s *PostgresStore) Close() error {
	s.pool.Close()
	return nil
}
