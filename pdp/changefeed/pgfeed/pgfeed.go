// Package pgfeed owns the change feed shared by PDP replicas on one
// PostgreSQL database: the changes table every replica publishes to, the
// replicas' registrations (heartbeat leases and the change each has
// applied), and the wait of a change for every live replica.
package pgfeed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciampdp/pdp/pdp/changefeed"
	"github.com/ciampdp/pdp/pdp/internal/pgkit"
)

// How replicas share the changes.
//
// Tables (in the connection's schema):
//
//	pdp_changes  (seq bigserial, kind, payload jsonb, origin, at)
//	pdp_replicas (id, started, lease_until, applied, unacked)
//	pdp_changes_pending (id, kind, origin, at): the outbox (outbox.go)
//
// Publish (any replica, or `pdp relations import`) inserts a change under
// an exclusive table lock, so that seqs commit in order, and notifies the
// channel pdp_changes. Every replica follows the table (woken by the
// notification, and reading it at least every heartbeat otherwise): for
// the changes after the last it applied, it publishes one change to its
// own feed (changefeed.Changes), which waits for its own sidecars (their
// acknowledgement or their lease), then records applied = the last seq in
// its row and notifies pdp_acks.
//
// Publish returns once every live replica (lease_until > now(), the
// database's clock) has applied the change, or its lease ran out without
// it. A replica renews its lease every heartbeat (a quarter of the sidecar
// lease) to now() + ReplicaLease (two sidecar leases), and only while it
// read the changes table recently. It grants a sidecar a lease only when
// that lease ends before its own (the gate of its feed, with the local
// clock from before the renewal was sent). So when a replica's lease has
// run out, its sidecars' leases have too: a replica cut off from
// PostgreSQL, or killed, delays a change by at most ReplicaLease, and its
// sidecars fail closed meanwhile. Publish gives up after ReplicaLease plus
// a sidecar lease and a second, naming the replicas that did not apply the
// change.
//
// A replica that starts registers with applied = the newest change: its
// sidecars learn its epoch first, so they hold nothing cached from before.

// Defaults.
const (
	// forgetReplicas: a replica row whose lease ran out that long ago is
	// deleted by the next replica to start.
	forgetReplicas = 24 * time.Hour
	notifyChanges  = "pdp_changes"
	notifyAcks     = "pdp_acks"
	// maxKind and maxPayload bound a change.
	maxKind    = 100
	maxPayload = 64 << 10
)

// SchemaLock serialises the creation of the tables of replicas starting
// together.
const SchemaLock = 0x7064706665656400 // "pdpfeed"

const ddl = `
CREATE TABLE IF NOT EXISTS pdp_changes (
	seq     bigserial PRIMARY KEY,
	kind    text NOT NULL,
	payload jsonb,
	origin  text NOT NULL,
	at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pdp_replicas (
	id          text PRIMARY KEY,
	started     timestamptz NOT NULL DEFAULT now(),
	lease_until timestamptz NOT NULL,
	applied     bigint NOT NULL
);
ALTER TABLE pdp_replicas ADD COLUMN IF NOT EXISTS unacked text[] NOT NULL DEFAULT '{}';
CREATE TABLE IF NOT EXISTS pdp_changes_pending (
	id     bigserial PRIMARY KEY,
	kind   text NOT NULL,
	origin text NOT NULL,
	at     timestamptz NOT NULL DEFAULT now()
);
`

// Errors.
var (
	// ErrChange: a change to publish is malformed (empty or long kind,
	// payload not a JSON value or too large).
	ErrChange = errors.New("pgfeed: bad change")
	// ErrNotApplied: Publish gave up waiting for some live replicas.
	ErrNotApplied = errors.New("pgfeed: change not applied by every live replica")
)

// Change is what a change says: its kind (delegation.revoke,
// consent.withdraw, policy.activate, relations.import, …) and an optional
// JSON payload for who wants more than the kind.
type Change struct {
	Kind    string          `json:"kind"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Options configures a Feed.
type Options struct {
	// Replica names this replica in pdp_replicas; default random. Give
	// each replica its own.
	Replica string
	// Logger receives the feed's warnings.
	Logger *slog.Logger
}

// Feed is one replica's view of the shared change feed: it publishes to
// the table and follows it into the local feed. Publish is safe for
// concurrent use.
type Feed struct {
	local *changefeed.Changes
	pool  *pgxpool.Pool
	url   string
	id    string
	log   *slog.Logger
	// beat and replicaLease derive from the local (sidecar) lease.
	beat, replicaLease time.Duration

	leaseEnd   atomic.Pointer[time.Time] // local clock; nil: no lease
	appliedSeq atomic.Int64              // the last seq recorded as applied
	lastRead   atomic.Pointer[time.Time] // the last read of the changes table
	lastGrant  atomic.Int64              // unix nanos: the end of the last lease granted

	mu    sync.Mutex
	acked chan struct{} // closed (and replaced) by every notification of pdp_acks
	wake  chan struct{} // buffered 1: the follower has changes to read

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// ReplicaLease is the registration lease of a replica whose sidecars get
// leases of lease.
func ReplicaLease(lease time.Duration) time.Duration { return 2 * lease }

// Open connects to the database at url, creates the tables if absent,
// registers the replica, and starts following the changes into local. It
// gates local's leases by the replica's own (changefeed.SetGate). Close
// stops it.
func Open(ctx context.Context, url string, local *changefeed.Changes, opts Options) (*Feed, error) {
	pool, err := pgkit.Open(ctx, url, pgkit.Schema{LockKey: SchemaLock, DDL: ddl})
	if err != nil {
		return nil, fmt.Errorf("change feed: %w", err)
	}
	if opts.Replica == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		opts.Replica = "replica-" + hex.EncodeToString(b)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Feed{local: local, pool: pool, url: url, id: opts.Replica, log: opts.Logger,
		beat: local.Lease() / 4, replicaLease: ReplicaLease(local.Lease()),
		acked: make(chan struct{}), wake: make(chan struct{}, 1)}
	cursor, err := f.register(ctx)
	if err != nil {
		pool.Close()
		return nil, err
	}
	local.SetGate(f.gate)
	f.sweepNow(ctx) // the changes of replicas that died before publishing them
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f.cancel = cancel
	f.done.Add(3)
	go func() { defer f.done.Done(); f.listen(bg) }()
	go func() { defer f.done.Done(); f.heartbeat(bg) }()
	go func() { defer f.done.Done(); f.follow(bg, cursor) }()
	return f, nil
}

// ID is this replica's id.
func (f *Feed) ID() string { return f.id }

// register inserts (or renews) the replica's row with applied = the newest
// change, and returns that seq.
func (f *Feed) register(ctx context.Context) (cursor int64, err error) {
	sent := time.Now()
	err = pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM pdp_replicas WHERE lease_until < now() - $1::bigint * interval '1 millisecond'", forgetReplicas.Milliseconds()); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM pdp_changes").Scan(&cursor); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO pdp_replicas (id, lease_until, applied) VALUES ($1, now() + $2::bigint * interval '1 millisecond', $3)
ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until, applied = excluded.applied, started = now()`,
			f.id, f.replicaLease.Milliseconds(), cursor)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("change feed: register replica %s: %w", f.id, err)
	}
	f.renewed(sent)
	f.appliedSeq.Store(cursor)
	now := time.Now()
	f.lastRead.Store(&now)
	return cursor, nil
}

func (f *Feed) renewed(sent time.Time) {
	end := sent.Add(f.replicaLease)
	f.leaseEnd.Store(&end)
}

// gate refuses a lease that would outlast the replica's own.
func (f *Feed) gate(now time.Time) error {
	end := f.leaseEnd.Load()
	grant := now.Add(f.local.Lease())
	if end == nil || grant.After(*end) {
		return changefeed.ErrNoLease
	}
	for {
		last := f.lastGrant.Load()
		if grant.UnixNano() <= last || f.lastGrant.CompareAndSwap(last, grant.UnixNano()) {
			return nil
		}
	}
}

// heartbeat renews the replica's lease every beat while the follower reads
// the changes table.
func (f *Feed) heartbeat(ctx context.Context) {
	t := time.NewTicker(f.beat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// The follower reads at least every beat, and is held at most a
		// sidecar lease by the local publish.
		if last := f.lastRead.Load(); time.Since(*last) > f.local.Lease()+2*f.beat {
			f.log.Warn("change feed: not renewing this replica's lease: the changes table was not read lately", "replica", f.id, "last_read", *last)
			continue
		}
		sent := time.Now()
		cctx, cancel := context.WithTimeout(ctx, f.beat)
		ct, err := f.pool.Exec(cctx, "UPDATE pdp_replicas SET lease_until = now() + $2::bigint * interval '1 millisecond' WHERE id = $1", f.id, f.replicaLease.Milliseconds())
		cancel()
		switch {
		case err != nil:
			if ctx.Err() == nil {
				f.log.Warn("change feed: replica lease not renewed", "replica", f.id, "error", err)
			}
		case ct.RowsAffected() == 0:
			// Deleted by someone: register again with what the follower
			// has applied (it catches up from there).
			if _, err := f.pool.Exec(ctx, `INSERT INTO pdp_replicas (id, lease_until, applied)
VALUES ($1, now() + $2::bigint * interval '1 millisecond', $3) ON CONFLICT (id) DO NOTHING`,
				f.id, f.replicaLease.Milliseconds(), f.appliedSeq.Load()); err == nil {
				f.renewed(sent)
			}
		default:
			f.renewed(sent)
			f.sweepNow(ctx)
		}
	}
}

// listen wakes the follower on pdp_changes and the publishers on pdp_acks,
// on a connection of its own, reconnecting after a failure.
func (f *Feed) listen(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := f.listenOnce(ctx, func() { backoff = 50 * time.Millisecond })
		if ctx.Err() != nil {
			return
		}
		f.log.Warn("change feed: notifications interrupted; reading the table every heartbeat", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (f *Feed) listenOnce(ctx context.Context, ok func()) error {
	conn, err := pgx.Connect(ctx, f.url)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	for _, ch := range []string{notifyChanges, notifyAcks} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return err
		}
	}
	ok()
	f.kick() // changes may have come while not listening
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		switch n.Channel {
		case notifyChanges:
			f.kick()
		case notifyAcks:
			f.ackedNow()
		}
	}
}

func (f *Feed) kick() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *Feed) ackedNow() {
	f.mu.Lock()
	close(f.acked)
	f.acked = make(chan struct{})
	f.mu.Unlock()
}

func (f *Feed) ackedChan() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acked
}

// follow applies the changes after cursor to the local feed, each batch as
// one local change, and records how far it applied.
func (f *Feed) follow(ctx context.Context, cursor int64) {
	t := time.NewTicker(f.beat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		case <-t.C:
		}
		started := time.Now()
		last, kind, err := f.read(ctx, cursor)
		if err != nil {
			if ctx.Err() == nil {
				f.log.Warn("change feed: changes table not readable", "replica", f.id, "error", err)
			}
			continue
		}
		f.lastRead.Store(&started)
		if last <= cursor {
			continue
		}
		// Waits for this replica's sidecars, at most their lease.
		p, err := f.local.PublishReport(ctx, kind)
		if err != nil && ctx.Err() == nil {
			f.log.Warn("change not acknowledged by every sidecar of this replica", "replica", f.id, "error", err)
		}
		if ctx.Err() != nil {
			return
		}
		cursor = last
		unacked := make([]string, len(p.Unacknowledged))
		for i, r := range p.Unacknowledged {
			unacked[i] = r.String()
		}
		if err := f.applied(ctx, cursor, unacked); err != nil && ctx.Err() == nil {
			f.log.Warn("change feed: applied change not recorded", "replica", f.id, "seq", cursor, "error", err)
			f.kick() // try again at once: publishers wait for it
		}
	}
}

// read returns the newest change after cursor and its kind (that of the
// last one when several came).
func (f *Feed) read(ctx context.Context, cursor int64) (last int64, kind string, err error) {
	cctx, cancel := context.WithTimeout(ctx, 2*f.beat)
	defer cancel()
	err = f.pool.QueryRow(cctx, "SELECT seq, kind FROM pdp_changes WHERE seq > $1 ORDER BY seq DESC LIMIT 1", cursor).Scan(&last, &kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return cursor, "", nil
	}
	return last, kind, err
}

func (f *Feed) applied(ctx context.Context, seq int64, unacked []string) error {
	cctx, cancel := context.WithTimeout(ctx, 2*f.beat)
	defer cancel()
	// One round trip: the update and its notification.
	_, err := f.pool.Exec(cctx, `WITH u AS (UPDATE pdp_replicas SET applied = greatest(applied, $2), unacked = $3 WHERE id = $1 RETURNING id)
SELECT pg_notify('`+notifyAcks+`', id) FROM u`, f.id, seq, unacked)
	if err == nil {
		f.appliedSeq.Store(seq)
	}
	return err
}

// Publish publishes a change of kind reason without payload: see
// PublishChange. It implements the publishers of the delegation and
// consent services.
func (f *Feed) Publish(ctx context.Context, reason string) (uint64, error) {
	return f.PublishChange(ctx, Change{Kind: reason})
}

// PublishChange inserts c into the shared feed and waits until every live
// replica has applied it (so none of their sidecars serves an answer
// cached before it) or its lease ran out, at most ReplicaLease plus a
// sidecar lease and a second (then ErrNotApplied), or until ctx ends.
func (f *Feed) PublishChange(ctx context.Context, c Change) (uint64, error) {
	return f.publish(ctx, c, 0)
}

// publish inserts c (deleting the pending change of that id, when not 0,
// in the same transaction) and waits as PublishChange says.
func (f *Feed) publish(ctx context.Context, c Change, pending int64) (uint64, error) {
	seq, err := insert(ctx, f.pool, f.id, c, pending)
	if err != nil {
		return 0, err
	}
	f.kick()
	limit := f.replicaLease + f.local.Lease() + time.Second
	err = Wait(ctx, f.pool, seq, limit, f.beat, f.ackedChan)
	p := changefeed.Published{Seq: uint64(seq)}
	if refs, uerr := unackedSidecars(context.WithoutCancel(ctx), f.pool, seq); uerr == nil {
		p.Unacknowledged = refs
	} else {
		f.log.Warn("change feed: sidecars without acknowledgement not read", "seq", seq, "error", uerr)
	}
	changefeed.AddToReport(ctx, p)
	return uint64(seq), err
}

// unackedSidecars are the sidecars that the replicas which applied seq
// waited for in vain (their lease ran out), in the last change each
// applied (seq, or one after it).
func unackedSidecars(ctx context.Context, q Querier, seq int64) ([]changefeed.SidecarRef, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rows, err := q.Query(ctx, "SELECT DISTINCT unnest(unacked) FROM pdp_replicas WHERE applied >= $1 ORDER BY 1", seq)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var refs []changefeed.SidecarRef
	for _, n := range names {
		app, id, _ := strings.Cut(n, "/")
		refs = append(refs, changefeed.SidecarRef{Application: app, ID: id})
	}
	return refs, nil
}

// validate checks a change.
func (c Change) validate() error {
	switch {
	case c.Kind == "" || len(c.Kind) > maxKind:
		return fmt.Errorf("%w: kind must be 1 to %d characters", ErrChange, maxKind)
	case len(c.Payload) > maxPayload:
		return fmt.Errorf("%w: payload over %d bytes", ErrChange, maxPayload)
	case len(c.Payload) > 0 && !json.Valid(c.Payload):
		return fmt.Errorf("%w: payload is not JSON", ErrChange)
	}
	return nil
}

// Querier is what Insert and Wait need of a connection: a *pgxpool.Pool
// or a *pgx.Conn.
type Querier interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

var (
	_ Querier = (*pgxpool.Pool)(nil)
	_ Querier = (*pgx.Conn)(nil)
)

// Insert adds a change made by origin to the shared feed and notifies the
// replicas; it returns the change's seq.
func Insert(ctx context.Context, q Querier, origin string, c Change) (int64, error) {
	return insert(ctx, q, origin, c, 0)
}

// insert is Insert, deleting the pending change of that id (when not 0) in
// the same transaction.
func insert(ctx context.Context, q Querier, origin string, c Change, pending int64) (int64, error) {
	if err := c.validate(); err != nil {
		return 0, err
	}
	var payload any
	if len(c.Payload) > 0 {
		payload = string(c.Payload)
	}
	var seq int64
	err := pgx.BeginFunc(ctx, q, func(tx pgx.Tx) error {
		// In commit order (the table lock): a follower reading seq >
		// cursor misses nothing. One round trip besides BEGIN and COMMIT.
		b := &pgx.Batch{}
		b.Queue("LOCK TABLE pdp_changes IN EXCLUSIVE MODE")
		b.Queue(`WITH c AS (INSERT INTO pdp_changes (kind, payload, origin) VALUES ($1, $2::jsonb, $3) RETURNING seq)
SELECT seq, pg_notify('`+notifyChanges+`', seq::text) FROM c`, c.Kind, payload, origin).QueryRow(func(row pgx.Row) error {
			return row.Scan(&seq, nil)
		})
		if pending != 0 {
			b.Queue("DELETE FROM pdp_changes_pending WHERE id = $1", pending)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return 0, fmt.Errorf("change feed: publish %s: %w", c.Kind, err)
	}
	return seq, nil
}

// Wait returns once every live replica has applied seq, or its lease ran
// out; it gives up after limit (ErrNotApplied, naming them). It reads the
// replicas at least every poll, and when acked (may be nil) fires.
func Wait(ctx context.Context, q Querier, seq int64, limit, poll time.Duration, acked func() <-chan struct{}) error {
	deadline := time.Now().Add(limit)
	for {
		var ch <-chan struct{}
		if acked != nil {
			ch = acked() // before the read: an ack after it wakes us
		}
		pending, err := pendingReplicas(ctx, q, seq)
		if err != nil {
			return fmt.Errorf("change feed: change %d: %w", seq, err)
		}
		if len(pending) == 0 {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: change %d: replicas %v", ErrNotApplied, seq, pending)
		}
		t := time.NewTimer(min(poll, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("change feed: change %d: replicas %v had not applied it: %w", seq, pending, ctx.Err())
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// pendingReplicas are the live replicas that have not applied seq.
func pendingReplicas(ctx context.Context, q Querier, seq int64) ([]string, error) {
	rows, err := q.Query(ctx, "SELECT id FROM pdp_replicas WHERE lease_until > now() AND applied < $1 ORDER BY id", seq)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return slices.Clip(ids), err
}

// Close stops following the changes. The replica's row keeps a lease only
// as long as the leases it granted: changes stop waiting for it then.
func (f *Feed) Close() {
	f.cancel()
	f.done.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rest := max(time.Until(time.Unix(0, f.lastGrant.Load())), 0)
	if _, err := f.pool.Exec(ctx, "UPDATE pdp_replicas SET lease_until = least(lease_until, now() + $2::bigint * interval '1 millisecond') WHERE id = $1",
		f.id, rest.Milliseconds()); err != nil {
		f.log.Warn("change feed: replica lease not shortened at close", "replica", f.id, "error", err)
	}
	f.pool.Close()
}

// PublishOnce publishes c to the shared feed in the database at url as a
// process that is no replica (`pdp relations import`): it creates the
// tables if absent, inserts c, and waits up to limit until every live
// replica applied it. It returns the change's seq.
func PublishOnce(ctx context.Context, url, origin string, c Change, limit time.Duration) (int64, error) {
	pool, err := pgkit.Open(ctx, url, pgkit.Schema{LockKey: SchemaLock, DDL: ddl})
	if err != nil {
		return 0, fmt.Errorf("change feed: %w", err)
	}
	defer pool.Close()
	seq, err := Insert(ctx, pool, origin, c)
	if err != nil {
		return 0, err
	}
	return seq, Wait(ctx, pool, seq, limit, 50*time.Millisecond, nil)
}
