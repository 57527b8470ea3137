package actorproof

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciampdp/pdp/pdp/internal/pgkit"
)

// PostgresSpent is the Spent of a deployment on PostgreSQL: one row per
// use (issuer, jti) in pdp_actor_token_uses, shared by every replica on
// the database, so a token proves one change whichever replica it
// reaches. A row is deleted once it has expired (at most once a
// PurgeInterval per process, on a Spend). Rows written before the issuer
// was recorded (migration 1) have the issuer "": such a use still holds
// its jti for every issuer until it expires.
type PostgresSpent struct {
	pool *pgxpool.Pool
	now  func() time.Time

	mu        sync.Mutex
	lastPurge time.Time
}

var _ Spent = (*PostgresSpent)(nil)

// PurgeInterval is the least time between two deletions of expired rows
// by one process.
const PurgeInterval = time.Minute

const spentLock = 0x7064706a7469 // "pdpjti"

const spentDDL = `
CREATE TABLE IF NOT EXISTS pdp_actor_token_uses (
	jti        text PRIMARY KEY,
	expires_at timestamptz NOT NULL,
	used_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS pdp_actor_token_uses_expires ON pdp_actor_token_uses (expires_at);
`

// spentMigrations are the table's versions after spentDDL's (pgkit).
var spentMigrations = []string{
	// 1: a use is keyed by (issuer, jti); earlier rows get the issuer "".
	`ALTER TABLE pdp_actor_token_uses ADD COLUMN IF NOT EXISTS issuer text NOT NULL DEFAULT '';
ALTER TABLE pdp_actor_token_uses DROP CONSTRAINT IF EXISTS pdp_actor_token_uses_pkey;
ALTER TABLE pdp_actor_token_uses ADD PRIMARY KEY (issuer, jti);`,
}

// OpenPostgresSpent connects to the database at uri and creates the table
// if it is absent; now is the clock (nil: time.Now).
func OpenPostgresSpent(ctx context.Context, uri string, now func() time.Time) (*PostgresSpent, error) {
	pool, err := pgkit.Open(ctx, uri, pgkit.Schema{LockKey: spentLock, DDL: spentDDL,
		Name: "actor_token_uses", Migrations: spentMigrations})
	if err != nil {
		return nil, fmt.Errorf("actor token uses: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &PostgresSpent{pool: pool, now: now}, nil
}

// Spend implements Spent: one INSERT that succeeds for a new use, or for
// one whose row has expired (and is taken over), unless an unexpired row
// from before the issuer was recorded holds the jti.
func (s *PostgresSpent) Spend(ctx context.Context, issuer, jti string, until time.Time) (bool, error) {
	now := s.now()
	s.purge(ctx, now)
	tag, err := s.pool.Exec(ctx, `INSERT INTO pdp_actor_token_uses (issuer, jti, expires_at, used_at)
		SELECT $1, $2, $3, $4
		WHERE NOT EXISTS (SELECT 1 FROM pdp_actor_token_uses WHERE issuer = '' AND jti = $2 AND expires_at > $4)
		ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at, used_at = EXCLUDED.used_at
		WHERE pdp_actor_token_uses.expires_at <= EXCLUDED.used_at`, issuer, jti, until, now)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrReplayUnavailable, err)
	}
	return tag.RowsAffected() == 1, nil
}

// purge deletes the expired rows when the last purge of this process is
// PurgeInterval old; a failure is left for the next one (the INSERT
// takes over expired rows anyway).
func (s *PostgresSpent) purge(ctx context.Context, now time.Time) {
	s.mu.Lock()
	due := now.Sub(s.lastPurge) >= PurgeInterval
	if due {
		s.lastPurge = now
	}
	s.mu.Unlock()
	if due {
		_, _ = s.pool.Exec(ctx, `DELETE FROM pdp_actor_token_uses WHERE expires_at <= $1`, now)
	}
}

// Close closes the pool.
func (s *PostgresSpent) Close() { s.pool.Close() }
