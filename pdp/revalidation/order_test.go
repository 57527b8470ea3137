package revalidation

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/dormancy"
)

// TestPostgresPositionsCommitInOrder: a writer that drew a position and
// has not committed holds back every later writer, so a replica that
// catches up while it is open never reads past it and skips it. Replica
// A's slow write is a raw transaction taking the append lock and
// inserting; replica B's store appends meanwhile; replica C's service
// catches up before and after A commits and must index both.
func TestPostgresPositionsCommitInOrder(t *testing.T) {
	uri := os.Getenv("PDP_TEST_POSTGRES_URL")
	if uri == "" {
		t.Skip("SKIPPED: PDP_TEST_POSTGRES_URL not set: the PostgreSQL stores are not tested")
	}
	ctx := context.Background()
	sfx := fmt.Sprintf("-%d", time.Now().UnixNano())
	open := func() *PostgresStore {
		st, err := OpenPostgres(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	b, c := open(), open()
	reader, err := NewService(ctx, Config{Store: c, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(ctx, `DELETE FROM pdp_dormancy_revalidations WHERE id LIKE '%' || $1`, sfx)
		_ = conn.Close(ctx)
	})
	slow := Revalidation{ID: "rv-slow" + sfx, Kind: dormancy.KindIdentity, Subject: Ref{Type: "user", ID: "slow" + sfx},
		By: Actor{Application: "backoffice", Subject: Ref{Type: "staff", ID: "kim"}}, Source: "admin", At: testNow}
	fast := slow
	fast.ID, fast.Subject.ID = "rv-fast"+sfx, "fast"+sfx

	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(pgAppendLock)); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"id":%q,"kind":"identity","subject":{"type":"user","id":%q},"by":{"application":"backoffice","subject":{"type":"staff","id":"kim"}},"source":"admin","at":%q}`,
		slow.ID, slow.Subject.ID, testNow.Format(time.RFC3339))
	var slowPos int64
	if err := tx.QueryRow(ctx, `INSERT INTO pdp_dormancy_revalidations (id, body) VALUES ($1, $2) RETURNING position`, slow.ID, body).Scan(&slowPos); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		r, err := b.Append(ctx, fast)
		if err == nil && r.Position <= slowPos {
			err = fmt.Errorf("the later writer drew position %d, at or below the open one's %d", r.Position, slowPos)
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a later writer committed while an earlier position was open (%v): a reader may skip the earlier one", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := reader.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := reader.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Revalidation{slow, fast} {
		if _, ok := reader.Latest(r.Key()); !ok {
			t.Errorf("%s (%s) never indexed by the reader", r.ID, r.Key())
		}
	}
}
