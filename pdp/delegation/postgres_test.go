package delegation

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPostgresEventsAndReplicas: every event of a history lands once in
// the append-only events table, and a second store on the same database
// (another replica) reads the first one's writes at once.
func TestPostgresEventsAndReplicas(t *testing.T) {
	st, sfx := openPostgresT(t)
	ctx := context.Background()
	replica, err := OpenPostgres(ctx, os.Getenv(pgEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()

	alice, bob := Ref{"user", "alice" + sfx}, Ref{"user", "bob" + sfx}
	d := record("dlg-ev"+sfx, alice, bob, today)
	if err := st.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	d2 := d.Clone()
	d2.addEvent(EventAccepted, today.Add(time.Hour), as(bob), "", StatusActive)
	d2.Version = 2
	if err := replica.Update(ctx, d2, 1); err != nil {
		t.Fatalf("Update through the replica: %v", err)
	}
	d3 := d2.Clone()
	d3.addEvent(EventSuspended, today.Add(2*time.Hour), as(alice), "travel", StatusSuspended)
	d3.addEvent(EventResumed, today.Add(3*time.Hour), as(alice), "", StatusActive)
	d3.Version = 3
	if err := st.Update(ctx, d3, 2); err != nil {
		t.Fatal(err)
	}
	got, err := replica.Get(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if jsonOf(t, got) != jsonOf(t, d3) {
		t.Errorf("replica reads\n%s\nwant\n%s", jsonOf(t, got), jsonOf(t, d3))
	}

	conn, err := pgx.Connect(ctx, os.Getenv(pgEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT version, event FROM pdp_delegation_events WHERE id = $1 ORDER BY seq`, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Version int
		Seq     int
		Type    string
	}
	var events []row
	for rows.Next() {
		var (
			v   int
			raw []byte
			e   Event
		)
		if err := rows.Scan(&v, &raw); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		events = append(events, row{v, e.Seq, e.Type})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []row{{1, 1, EventOffered}, {2, 2, EventAccepted}, {3, 3, EventSuspended}, {3, 4, EventResumed}}
	if jsonOf(t, events) != jsonOf(t, want) {
		t.Errorf("events table: %v, want %v", events, want)
	}
}

// TestPostgresOpenConcurrently: replicas starting together all create (or
// find) the tables.
func TestPostgresOpenConcurrently(t *testing.T) {
	uri := os.Getenv(pgEnv)
	if uri == "" {
		t.Skipf("SKIPPED: %s not set", pgEnv)
	}
	ctx := context.Background()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := OpenPostgres(ctx, uri)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("OpenPostgres: %v", err)
		}
	}
}

func TestOpenPostgresBadURI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := OpenPostgres(ctx, "postgres://nobody:x@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"); err == nil {
		t.Error("OpenPostgres to a closed port: no error")
	}
}
