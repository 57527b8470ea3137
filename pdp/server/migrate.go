package server

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/relations"
)

// Migration is what MigrateRelations did.
type Migration struct {
	// Where is the database, its password hidden.
	Where string
	// Before and After are the migrations SpiceDB's tables were and are
	// at; Before is "" when the database had none.
	Before, After string
	Took          time.Duration
	// CommitTimestampsOff: the server runs with track_commit_timestamp=off,
	// which SpiceDB's Watch (and the PDP's fact cache) needs on.
	CommitTimestampsOff bool
}

// MigrateRelations creates or migrates SpiceDB's tables in the PostgreSQL
// database of rc, which must use relations.engine postgres.
func MigrateRelations(ctx context.Context, rc RelationsConfig) (Migration, error) {
	switch rc.Engine {
	case relations.EnginePostgres:
	case relations.EngineMemory:
		return Migration{}, errors.New(`relations.engine is "memory": its store lives inside the serving process and needs no migration; 'pdp migrate' is for relations.engine postgres`)
	case relations.EngineRemote:
		return Migration{}, errors.New(`relations.engine is "remote": the remote SpiceDB migrates its own datastore ('spicedb datastore migrate head'); 'pdp migrate' is for relations.engine postgres`)
	default:
		return Migration{}, fmt.Errorf(`relations.engine is %q: 'pdp migrate' is for relations.engine postgres`, rc.Engine)
	}
	m := Migration{Where: redactURI(rc.PostgresURL)}
	var err error
	if m.Before, err = spiceDBVersion(ctx, rc.PostgresURL); err != nil {
		return m, fmt.Errorf("%s: %w", m.Where, err)
	}
	started := time.Now()
	if err := relations.Migrate(ctx, rc.PostgresURL); err != nil {
		return m, fmt.Errorf("%s: %w", m.Where, err)
	}
	if m.After, err = spiceDBVersion(ctx, rc.PostgresURL); err != nil {
		return m, fmt.Errorf("%s: %w", m.Where, err)
	}
	m.Took = time.Since(started).Round(time.Millisecond)
	if on, err := trackCommitTimestamp(ctx, rc.PostgresURL); err == nil && !on {
		m.CommitTimestampsOff = true
	}
	return m, nil
}

// spiceDBVersion returns the migration SpiceDB's tables are at, "" when
// the database has none yet.
func spiceDBVersion(ctx context.Context, uri string) (string, error) {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('alembic_version') IS NOT NULL").Scan(&exists); err != nil {
		return "", fmt.Errorf("read the migration version: %w", err)
	}
	if !exists {
		return "", nil
	}
	var v string
	if err := conn.QueryRow(ctx, "SELECT version_num FROM alembic_version").Scan(&v); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("read the migration version: %w", err)
	}
	return v, nil
}

func trackCommitTimestamp(ctx context.Context, uri string) (bool, error) {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v string
	err = conn.QueryRow(ctx, "SHOW track_commit_timestamp").Scan(&v)
	return v == "on", err
}

// redactURI hides the password of a database URI.
func redactURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "relations.postgres_url"
	}
	return u.Redacted()
}
