package actorproof

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

// TestPostgresSpent: on PostgreSQL a use is shared by every replica (two
// stores on one database), refused until it expires, then taken over and
// purged; an unreachable database fails closed.
func TestPostgresSpent(t *testing.T) {
	url := freshSchema(t) // the table as this version makes it, whatever another checkout left in the database
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	open := func() *PostgresSpent {
		s, err := OpenPostgresSpent(ctx, url, clk.now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	a, b := open(), open() // two replicas
	run := rand.Text()
	jti := func(name string) string { return run + "-" + name }
	spend := func(s *PostgresSpent, name string, until time.Duration) bool {
		t.Helper()
		fresh, err := s.Spend(ctx, issuer, jti(name), clk.now().Add(until))
		if err != nil {
			t.Fatal(err)
		}
		return fresh
	}
	if !spend(a, "one", time.Minute) {
		t.Fatal("a fresh jti refused")
	}
	if spend(b, "one", time.Minute) || spend(a, "one", time.Minute) {
		t.Fatal("a used jti accepted again (by the other replica or the same)")
	}
	clk.add(time.Minute + time.Second)
	if !spend(b, "one", time.Minute) {
		t.Fatal("an expired use is not forgotten")
	}
	if spend(a, "one", time.Minute) {
		t.Fatal("the use taken over is not remembered")
	}
	// The purge deletes expired rows (a's last purge was a minute ago).
	spend(a, "short", time.Second)
	clk.add(PurgeInterval + 2*time.Second)
	spend(a, "trigger", time.Minute)
	var n int
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM pdp_actor_token_uses WHERE jti = $1`, jti("short")).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("an expired row was not purged")
	}
	a.Close()
	if _, err := a.Spend(ctx, issuer, jti("closed"), clk.now().Add(time.Minute)); !errors.Is(err, ErrReplayUnavailable) {
		t.Fatalf("spend on a closed pool: %v, want ErrReplayUnavailable", err)
	}
}
