package pgfeed

import (
	"context"
	"testing"
	"time"
)

// count returns the rows of a table of the feed.
func count(t *testing.T, f *Feed, table string) int {
	t.Helper()
	var n int
	if err := f.pool.QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOutboxChangeOfKilledReplicaReachesOthers: replica A records a change
// as coming, makes it, and is killed before publishing it. Replica B
// sweeps it once A's lease ran out: B's local feed (its sidecars) hears of
// it within A's lease and a few heartbeats, without anyone publishing.
func TestOutboxChangeOfKilledReplicaReachesOthers(t *testing.T) {
	dbURL := freshURL(t)
	a, _ := replica(t, dbURL, "a")
	b, localB := replica(t, dbURL, "b")
	before := localB.Seq()
	if _, err := a.Prepare(t.Context(), "delegation.revoke"); err != nil {
		t.Fatal(err)
	}
	// The change is made here; then A is killed (no publish, no close).
	a.cancel()
	a.done.Wait()
	killed := time.Now()
	bound := ReplicaLease(testLease) + 4*b.beat + time.Second
	for localB.Seq() == before {
		if time.Since(killed) > bound {
			t.Fatalf("B's feed did not hear of A's unpublished change within %v", bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("B heard of A's unpublished change %v after A was killed (A's lease %v)", time.Since(killed).Round(time.Millisecond), ReplicaLease(testLease))
	if n := count(t, b, "pdp_changes_pending"); n != 0 {
		t.Errorf("%d changes still pending after the sweep", n)
	}
	var payload string
	if err := b.pool.QueryRow(t.Context(), "SELECT payload->>'swept_from' FROM pdp_changes WHERE kind = 'delegation.revoke'").Scan(&payload); err != nil || payload != "a" {
		t.Errorf("swept change: swept_from %q %v, want a", payload, err)
	}
}

// TestOutboxPublishAndDrop: a published change leaves nothing pending
// and is in the feed once; a dropped one leaves nothing at all.
func TestOutboxPublishAndDrop(t *testing.T) {
	dbURL := freshURL(t)
	a, localA := replica(t, dbURL, "a")
	p, err := a.Prepare(t.Context(), "consent.withdraw")
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, a, "pdp_changes_pending"); n != 1 {
		t.Fatalf("%d pending after Prepare, want 1", n)
	}
	before := localA.Seq()
	if _, err := p.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	if localA.Seq() <= before {
		t.Error("the published change did not reach the local feed")
	}
	q, err := a.Prepare(t.Context(), "consent.give")
	if err != nil {
		t.Fatal(err)
	}
	q.Drop(t.Context())
	if n := count(t, a, "pdp_changes_pending"); n != 0 {
		t.Errorf("%d pending after Publish and Drop, want 0", n)
	}
	if n := count(t, a, "pdp_changes"); n != 1 {
		t.Errorf("%d changes, want 1 (the published; the dropped one is not)", n)
	}
	if _, err := a.Prepare(t.Context(), ""); err == nil {
		t.Error("Prepare of an empty kind: no error")
	}
}

// TestSweepLeavesLiveReplicasPendingChanges: a pending change of a live
// replica is swept only once older than a publish may wait.
func TestSweepLeavesLiveReplicasPendingChanges(t *testing.T) {
	dbURL := freshURL(t)
	a, _ := replica(t, dbURL, "a")
	if _, err := a.Prepare(t.Context(), "delegation.suspend"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		stale time.Duration
		want  int
	}{{time.Hour, 0}, {0, 1}, {0, 0}} {
		n, err := Sweep(ctx, a.pool, "sweeper", tc.stale)
		if err != nil || n != tc.want {
			t.Errorf("Sweep(stale %v) = %d %v, want %d", tc.stale, n, err, tc.want)
		}
	}
}
