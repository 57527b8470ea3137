package delegation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciampdp/pdp/pdp/internal/pgkit"
)

// PostgresStore keeps delegations in PostgreSQL: the current record of each
// in pdp_delegations (with its principal, agent and parent as columns for
// the indexes) and every event of every history, append-only, in
// pdp_delegation_events. It is meant to be shared by many PDP replicas, so
// every read goes to the database (no cache in the process).
type PostgresStore struct {
	pool *pgxpool.Pool
}

var _ Store = (*PostgresStore)(nil)

// schemaLock serialises the table creation of concurrent openers.
const schemaLock = 0x70647064656c6567 // "pdpdeleg"

const ddl = `
CREATE TABLE IF NOT EXISTS pdp_delegations (
	id         text PRIMARY KEY,
	principal  text NOT NULL,
	agent      text NOT NULL,
	parent     text NOT NULL DEFAULT '',
	status     text NOT NULL,
	version    int NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	record     jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS pdp_delegations_principal_agent ON pdp_delegations (principal, agent);
CREATE INDEX IF NOT EXISTS pdp_delegations_agent ON pdp_delegations (agent);
CREATE INDEX IF NOT EXISTS pdp_delegations_parent ON pdp_delegations (parent) WHERE parent <> '';
CREATE TABLE IF NOT EXISTS pdp_delegation_events (
	seq     bigserial PRIMARY KEY,
	id      text NOT NULL,
	version int NOT NULL,
	event   jsonb NOT NULL,
	at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS pdp_delegation_events_id ON pdp_delegation_events (id, seq);
`

// OpenPostgres connects to the database at uri (a pgx/libpq URI) and
// creates the tables and indexes if they are absent.
func OpenPostgres(ctx context.Context, uri string) (*PostgresStore, error) {
	pool, err := pgkit.Open(ctx, uri, pgkit.Schema{LockKey: schemaLock, DDL: ddl})
	if err != nil {
		return nil, fmt.Errorf("delegation: %w", err)
	}
	return &PostgresStore{pool: pool}, nil
}

// Create implements Store: the record and its history in one transaction.
func (s *PostgresStore) Create(ctx context.Context, d Delegation) error {
	if d.ID == "" {
		return errors.New("delegation: create: record without id")
	}
	rec, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("delegation %s: encode: %w", d.ID, err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO pdp_delegations
			(id, principal, agent, parent, status, version, created_at, record)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (id) DO NOTHING`,
			d.ID, d.Principal.String(), d.Agent.String(), d.Parent, string(d.Status), d.Version, d.CreatedAt, rec)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("delegation %s: %w", d.ID, ErrExists)
		}
		return insertEvents(ctx, tx, d, d.History)
	})
	return pgError("create", d.ID, err)
}

// Update implements Store: UPDATE … WHERE id AND version, and the events
// the stored history lacks, in one transaction.
func (s *PostgresStore) Update(ctx context.Context, d Delegation, prevVersion int) error {
	rec, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("delegation %s: encode: %w", d.ID, err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE pdp_delegations
			SET principal = $3, agent = $4, parent = $5, status = $6, version = $7, record = $8, updated_at = now()
			WHERE id = $1 AND version = $2`,
			d.ID, prevVersion, d.Principal.String(), d.Agent.String(), d.Parent, string(d.Status), d.Version, rec)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var version int
			err := tx.QueryRow(ctx, `SELECT version FROM pdp_delegations WHERE id = $1`, d.ID).Scan(&version)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("delegation %s: %w", d.ID, ErrNotFound)
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("delegation %s: version %d, expected %d: %w", d.ID, version, prevVersion, ErrConflict)
		}
		// The row is locked by the update: the last stored seq is stable.
		var last int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max((event->>'seq')::int), 0)
			FROM pdp_delegation_events WHERE id = $1`, d.ID).Scan(&last); err != nil {
			return err
		}
		var fresh []Event
		for _, e := range d.History {
			if e.Seq > last {
				fresh = append(fresh, e)
			}
		}
		return insertEvents(ctx, tx, d, fresh)
	})
	return pgError("update", d.ID, err)
}

func insertEvents(ctx context.Context, tx pgx.Tx, d Delegation, events []Event) error {
	for _, e := range events {
		ev, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode event %d: %w", e.Seq, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO pdp_delegation_events (id, version, event, at)
			VALUES ($1, $2, $3, $4)`, d.ID, d.Version, ev, e.At); err != nil {
			return err
		}
	}
	return nil
}

// pgError passes the package's errors through and wraps the database's.
func pgError(op, id string, err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		return err
	}
	return fmt.Errorf("delegation %s: postgres %s: %w", id, op, err)
}

// Get implements Store.
func (s *PostgresStore) Get(ctx context.Context, id string) (Delegation, error) {
	var (
		version int
		rec     []byte
	)
	err := s.pool.QueryRow(ctx, `SELECT version, record FROM pdp_delegations WHERE id = $1`, id).Scan(&version, &rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return Delegation{}, notFound(id)
	}
	if err != nil {
		return Delegation{}, fmt.Errorf("delegation %s: postgres get: %w", id, err)
	}
	return decodeRow(id, version, rec)
}

// List implements Store.
func (s *PostgresStore) List(ctx context.Context, f Filter) ([]Delegation, error) {
	var (
		where []string
		args  []any
	)
	add := func(col, v string) {
		args = append(args, v)
		where = append(where, col+" = $"+strconv.Itoa(len(args)))
	}
	if f.Principal != nil {
		add("principal", f.Principal.String())
	}
	if f.Agent != nil {
		add("agent", f.Agent.String())
	}
	if f.Parent != "" {
		add("parent", f.Parent)
	}
	q := `SELECT id, version, record FROM pdp_delegations`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("delegation: postgres list: %w", err)
	}
	defer rows.Close()
	var out []Delegation
	for rows.Next() {
		var (
			id      string
			version int
			rec     []byte
		)
		if err := rows.Scan(&id, &version, &rec); err != nil {
			return nil, fmt.Errorf("delegation: postgres list: %w", err)
		}
		d, err := decodeRow(id, version, rec)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("delegation: postgres list: %w", err)
	}
	sortDelegations(out) // the same order as FileStore, to the nanosecond
	return out, nil
}

// Lineage implements Store in one query: the records of the pairs, then
// their ancestors, walked by a recursive query (UNION stops a loop).
func (s *PostgresStore) Lineage(ctx context.Context, pairs []Pair) ([]Delegation, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	principals, agents := make([]string, len(pairs)), make([]string, len(pairs))
	for i, p := range pairs {
		principals[i], agents[i] = p.Principal.String(), p.Agent.String()
	}
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE lineage(id, parent, version, record) AS (
			SELECT d.id, d.parent, d.version, d.record FROM pdp_delegations d
			JOIN unnest($1::text[], $2::text[]) AS p(principal, agent)
				ON d.principal = p.principal AND d.agent = p.agent
			UNION
			SELECT d.id, d.parent, d.version, d.record FROM pdp_delegations d
			JOIN lineage l ON d.id = l.parent AND l.parent <> ''
		)
		SELECT id, version, record FROM lineage`, principals, agents)
	if err != nil {
		return nil, fmt.Errorf("delegation: postgres lineage: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	var out []Delegation
	for rows.Next() {
		var (
			id      string
			version int
			rec     []byte
		)
		if err := rows.Scan(&id, &version, &rec); err != nil {
			return nil, fmt.Errorf("delegation: postgres lineage: %w", err)
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		d, err := decodeRow(id, version, rec)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("delegation: postgres lineage: %w", err)
	}
	return out, nil
}

func decodeRow(id string, version int, rec []byte) (Delegation, error) {
	var d Delegation
	if err := json.Unmarshal(rec, &d); err != nil {
		return Delegation{}, fmt.Errorf("delegation %s: stored record: %w", id, err)
	}
	d.ID, d.Version = id, version
	return d, nil
}

// Close closes the connection pool.
func (s *PostgresStore) Close() error {
	s.pool.Close()
	return nil
}
