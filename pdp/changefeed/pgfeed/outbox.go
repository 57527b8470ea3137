package pgfeed

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/changefeed"
)

// The outbox: a change recorded as coming before it is made.
//
// A service makes a change (a delegation revoked, a consent withdrawn) in
// its store and then publishes it; a replica that dies in between would
// leave the other replicas' sidecars serving answers cached from before
// the change until their cache TTL. So the service first records the
// change as coming (Prepare: a row in pdp_changes_pending naming this
// replica), makes it, and publishes it (the insert into pdp_changes
// deletes the pending row in the same transaction), or drops it when the
// method made no change.
//
// Every replica sweeps at start and every heartbeat: a pending change
// whose replica's lease ran out (it died, or was cut off from PostgreSQL),
// or that waited longer than a publish may (staleAfter: the publish itself
// failed), is published by the sweeper in its place. So a change whose
// publish was cut reaches every live replica's sidecars at most
// ReplicaLease plus a heartbeat and their acknowledgement after it was
// made. A change recorded as coming but never made is published too: the
// sidecars drop their cached answers for nothing, which is safe.

var (
	_ changefeed.Outbox  = (*Feed)(nil)
	_ changefeed.Pending = (*pending)(nil)
)

// pending is a change of this replica recorded as coming.
type pending struct {
	f  *Feed
	id int64
	c  Change
}

// Prepare records a change of kind reason as coming (see the outbox).
func (f *Feed) Prepare(ctx context.Context, reason string) (changefeed.Pending, error) {
	c := Change{Kind: reason}
	if err := c.validate(); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*f.beat)
	defer cancel()
	var id int64
	if err := f.pool.QueryRow(cctx, "INSERT INTO pdp_changes_pending (kind, origin) VALUES ($1, $2) RETURNING id", c.Kind, f.id).Scan(&id); err != nil {
		return nil, fmt.Errorf("change feed: record %s as coming: %w", reason, err)
	}
	return &pending{f: f, id: id, c: c}, nil
}

// Publish publishes the change made, as PublishChange does, and deletes
// its pending row in the same transaction.
func (p *pending) Publish(ctx context.Context) (uint64, error) {
	return p.f.publish(ctx, p.c, p.id)
}

// Drop deletes the pending row of a change that was not made. A failure is
// only logged: a sweep publishes the change, needlessly but safely.
func (p *pending) Drop(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*p.f.beat)
	defer cancel()
	if _, err := p.f.pool.Exec(cctx, "DELETE FROM pdp_changes_pending WHERE id = $1", p.id); err != nil {
		p.f.log.Warn("change feed: change not made but still recorded as coming; a sweep will publish it", "kind", p.c.Kind, "error", err)
	}
}

// staleAfter is how long a pending change of a live replica may wait
// before a sweep publishes it: as long as a publish may wait, and a
// second.
func (f *Feed) staleAfter() time.Duration { return f.replicaLease + f.local.Lease() + 2*time.Second }

func (f *Feed) sweepNow(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 2*f.beat)
	defer cancel()
	n, err := Sweep(cctx, f.pool, f.id, f.staleAfter())
	switch {
	case err != nil && ctx.Err() == nil:
		f.log.Warn("change feed: pending changes of other replicas not swept", "replica", f.id, "error", err)
	case n > 0:
		f.log.Warn("change feed: published changes that a replica made but did not publish (it died or lost PostgreSQL in between)", "replica", f.id, "changes", n)
		f.kick()
	}
}

// sweepable selects the pending changes to publish in their replica's
// place: older than $1 milliseconds, or of a replica without a lease.
const sweepable = ` FROM pdp_changes_pending p WHERE p.at < now() - $1::bigint * interval '1 millisecond'
OR NOT EXISTS (SELECT 1 FROM pdp_replicas r WHERE r.id = p.origin AND r.lease_until > now())`

// Sweep publishes, as origin, the pending changes whose replica's lease
// ran out or that are older than stale, and returns how many. It does not
// wait for the replicas to apply them.
func Sweep(ctx context.Context, q Querier, origin string, stale time.Duration) (int, error) {
	var some bool
	rows, err := q.Query(ctx, "SELECT EXISTS (SELECT 1"+sweepable+")", stale.Milliseconds())
	if err != nil {
		return 0, fmt.Errorf("change feed: sweep: %w", err)
	}
	if some, err = pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool]); err != nil || !some {
		return 0, err
	}
	n := 0
	err = pgx.BeginFunc(ctx, q, func(tx pgx.Tx) error {
		n = 0
		// Under the lock of Insert: seqs commit in order.
		if _, err := tx.Exec(ctx, "LOCK TABLE pdp_changes IN EXCLUSIVE MODE"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `WITH gone AS (DELETE`+sweepable+` RETURNING p.kind, p.origin, p.at),
c AS (INSERT INTO pdp_changes (kind, payload, origin)
	SELECT kind, jsonb_build_object('swept_from', origin, 'recorded', at), $2 FROM gone ORDER BY at RETURNING seq)
SELECT seq, pg_notify('`+notifyChanges+`', seq::text) FROM c`, stale.Milliseconds(), origin)
		if err != nil {
			return err
		}
		for rows.Next() {
			n++
		}
		return rows.Err()
	})
	if err != nil {
		return 0, fmt.Errorf("change feed: sweep: %w", err)
	}
	return n, nil
}
