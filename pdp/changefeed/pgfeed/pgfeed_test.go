package pgfeed

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/changefeed"
)

const pgEnv = "PDP_TEST_POSTGRES_URL"

// freshURL returns the test database's URL with search_path set to a new
// schema (dropped at cleanup).
func freshURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv(pgEnv)
	if base == "" {
		t.Skipf("SKIPPED: %s is not set: the shared change feed is not tested", pgEnv)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	schema := fmt.Sprintf("pgfeed_%x", b)
	exec := func(sql string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Error(err)
		}
	}
	exec("CREATE SCHEMA " + schema)
	t.Cleanup(func() { exec("DROP SCHEMA " + schema + " CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

const testLease = 300 * time.Millisecond

// replica opens a replica of the shared feed with a fresh local feed.
func replica(t *testing.T, dbURL, id string) (*Feed, *changefeed.Changes) {
	t.Helper()
	local := changefeed.NewChangesSince(testLease, time.Now().Add(-time.Hour))
	f, err := Open(t.Context(), dbURL, local, Options{Replica: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f, local
}

// subscribe makes a sidecar of local that holds a cached answer: it polled
// (acknowledging the current seq) and then forwarded an evaluation.
func subscribe(t *testing.T, local *changefeed.Changes, id string) {
	t.Helper()
	seq := local.Seq()
	if _, _, _, err := local.Poll("app", id, seq, local.Epoch(), time.Now()); err != nil {
		t.Fatal(err)
	}
	local.Told("app", id, seq)
	if _, _, _, err := local.Poll("app", id, seq, local.Epoch(), time.Now()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	local.Asked("app", id)
}

// TestChangeOfOneReplicaReachesEveryReplica: a change published through B
// bumps the local feeds of A and B before Publish returns.
func TestChangeOfOneReplicaReachesEveryReplica(t *testing.T) {
	dbURL := freshURL(t)
	_, localA := replica(t, dbURL, "a")
	b, localB := replica(t, dbURL, "b")
	beforeA, beforeB := localA.Seq(), localB.Seq()
	seq, err := b.PublishChange(t.Context(), Change{Kind: "delegation.revoke", Payload: json.RawMessage(`{"id":"dlg-1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if seq == 0 {
		t.Error("seq 0")
	}
	if localA.Seq() <= beforeA || localB.Seq() <= beforeB {
		t.Errorf("local seqs A %d→%d, B %d→%d: want both bumped when Publish returned", beforeA, localA.Seq(), beforeB, localB.Seq())
	}
}

// TestPublishWaitsForSidecarsOfOtherReplicas: a change through B returns
// only once A's sidecar, which holds a cached answer, acknowledged it.
func TestPublishWaitsForSidecarsOfOtherReplicas(t *testing.T) {
	dbURL := freshURL(t)
	_, localA := replica(t, dbURL, "a")
	b, _ := replica(t, dbURL, "b")
	subscribe(t, localA, "sc-a")
	const ackAfter = 150 * time.Millisecond
	before := localA.Seq()
	go func() {
		// The sidecar acknowledges what it is told, ackAfter later.
		deadline := time.Now().Add(5 * time.Second)
		for localA.Seq() == before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(ackAfter)
		_, _, _, _ = localA.Poll("app", "sc-a", localA.Seq(), localA.Epoch(), time.Now())
	}()
	start := time.Now()
	if _, err := b.Publish(t.Context(), "consent.withdraw"); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took < ackAfter {
		t.Errorf("Publish returned after %v, before A's sidecar acknowledged (%v)", took, ackAfter)
	}
	if got := localA.Acked("app", "sc-a"); got <= before {
		t.Errorf("A's sidecar acked %d, want > %d when Publish returned", got, before)
	}
}

// TestDeadReplicaDelaysAChangeByItsLeaseOnly: a replica that stops (killed:
// no close) is waited for until its lease runs out, no longer; its own
// feed refuses leases past its registration lease.
func TestDeadReplicaDelaysAChangeByItsLeaseOnly(t *testing.T) {
	dbURL := freshURL(t)
	b, _ := replica(t, dbURL, "b")
	c, localC := replica(t, dbURL, "c")
	subscribe(t, localC, "sc-c")
	// Killed: its loops stop, its row keeps the last lease it renewed.
	c.cancel()
	c.done.Wait()
	killed := time.Now()
	start := time.Now()
	if _, err := b.Publish(t.Context(), "delegation.revoke"); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if limit := ReplicaLease(testLease) + 200*time.Millisecond; took > limit {
		t.Errorf("a dead replica delayed the change %v, want at most its lease (%v)", took, limit)
	}
	// C's sidecar could not renew past C's lease.
	if _, _, _, err := localC.Poll("app", "sc-c", localC.Seq(), localC.Epoch(), killed.Add(ReplicaLease(testLease))); !errors.Is(err, changefeed.ErrNoLease) {
		t.Errorf("a poll of the dead replica after its lease: %v, want ErrNoLease", err)
	}
}

// TestClosedReplicaIsNotWaitedFor: a replica that closed (no lease
// granted) delays no change.
func TestClosedReplicaIsNotWaitedFor(t *testing.T) {
	dbURL := freshURL(t)
	b, _ := replica(t, dbURL, "b")
	local := changefeed.NewChangesSince(testLease, time.Now().Add(-time.Hour))
	c, err := Open(t.Context(), dbURL, local, Options{Replica: "c"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	start := time.Now()
	if _, err := b.Publish(t.Context(), "policy.activate"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > testLease {
		t.Errorf("a closed replica delayed the change %v", took)
	}
}

func TestChangeValidate(t *testing.T) {
	for _, tc := range []struct {
		c  Change
		ok bool
	}{
		{Change{Kind: "delegation.revoke"}, true},
		{Change{Kind: "ssf.session-revoked", Payload: json.RawMessage(`{"sub":"alice"}`)}, true},
		{Change{}, false},
		{Change{Kind: string(make([]byte, maxKind+1))}, false},
		{Change{Kind: "x", Payload: json.RawMessage(`{`)}, false},
		{Change{Kind: "x", Payload: make(json.RawMessage, maxPayload+1)}, false},
	} {
		if err := tc.c.validate(); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrChange)) {
			t.Errorf("%q %q: %v, want ok %v", tc.c.Kind, tc.c.Payload, err, tc.ok)
		}
	}
}

// TestDeletedRegistrationComesBack: a replica whose row was deleted
// registers again at its next heartbeat, with the seq it applied, and
// changes wait for it again.
func TestDeletedRegistrationComesBack(t *testing.T) {
	dbURL := freshURL(t)
	a, _ := replica(t, dbURL, "a")
	if _, err := a.Publish(t.Context(), "delegation.revoke"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.pool.Exec(t.Context(), "DELETE FROM pdp_replicas WHERE id = 'a'"); err != nil {
		t.Fatal(err)
	}
	var applied int64
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := a.pool.QueryRow(t.Context(), "SELECT applied FROM pdp_replicas WHERE id = 'a'").Scan(&applied)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the row did not come back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if applied != a.appliedSeq.Load() || applied == 0 {
		t.Errorf("registered again with applied %d, want %d", applied, a.appliedSeq.Load())
	}
	if _, err := a.Publish(t.Context(), "consent.withdraw"); err != nil {
		t.Fatal(err)
	}
}

// TestUnacknowledgedSidecarsOfOtherReplicas: a sidecar of A that never
// acknowledges is named in the report of a change made through B, once
// its lease ran out.
func TestUnacknowledgedSidecarsOfOtherReplicas(t *testing.T) {
	dbURL := freshURL(t)
	_, localA := replica(t, dbURL, "a")
	b, _ := replica(t, dbURL, "b")
	subscribe(t, localA, "silent")
	ctx, report := changefeed.WithReport(t.Context())
	if _, err := b.Publish(ctx, "delegation.revoke"); err != nil {
		t.Fatal(err)
	}
	got := report.Unacknowledged()
	if len(got) != 1 || got[0] != (changefeed.SidecarRef{Application: "app", ID: "silent"}) {
		t.Errorf("unacknowledged %v, want [app/silent]", got)
	}
	if report.Seq() == 0 {
		t.Error("the report has no seq")
	}
}
