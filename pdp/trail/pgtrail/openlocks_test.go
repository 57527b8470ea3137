package pgtrail

import (
	"context"
	"testing"
	"time"
)

// TestPostgresOpenChangesNothingLocksNothing: a replica opening a trail
// that has every table, index and column takes no lock that an append's
// (ROW EXCLUSIVE) or another transaction's EXCLUSIVE lock would make it
// wait for: its start never queues behind, or between, appends.
func TestPostgresOpenChangesNothingLocksNothing(t *testing.T) {
	db := newPGDB(t)
	l := db.open(Options{})
	pgAppendN(t, l, 0, 5)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := db.c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, db.sql(`LOCK TABLE {head}, {records}, {hashes}, {checkpoints}, `+db.schema+`.trail_sidecar_spools IN EXCLUSIVE MODE`)); err != nil {
		t.Fatal(err)
	}
	octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
	defer ocancel()
	l2, err := Open(octx, db.url, Options{Schema: db.schema, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open of a complete trail while its tables are locked: %v", err)
	}
	_ = l2.Close()
}
