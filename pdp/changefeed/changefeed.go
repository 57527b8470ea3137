// Package changefeed owns the sidecars' change feed: the sequence of
// changes that may alter a decision, the subscribed sidecars with their
// leases and acknowledgements, and Publish, which waits for them.
package changefeed

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The change feed tells sidecars when to drop their cached answers, and
// lets a change wait until they have.
//
// Protocol (GET /v1/changes, the application's API key, PDP-Sidecar-Id;
// pdp/api serves it):
//
//	GET /v1/changes?after=<seq>&epoch=<epoch>&wait=<duration>
//	→ 200 {"seq": n, "epoch": "…", "lease_ms": 2000, "policy_version": "…"}
//
// seq counts changes since this process started (it is 1 before the first
// one); epoch is random per process, so a seq is only meaningful with its
// epoch. The answer comes at once when seq > after, when after is not a seq
// of this epoch (after > seq, or epoch given and different); otherwise the
// request is held until a change is published or wait (default 1s, at most
// 10s) passes, and answered with the seq then current.
//
// Each poll says "I have applied after": the sidecar sends after=S only
// once it has dropped every answer cached before change S. The rule the
// sidecar keeps:
//
//   - It serves a cached answer only while the seq and epoch of the last
//     poll answer it received are those its cache was filled under, and
//     only until (the send time of that poll) + lease_ms. When the time runs
//     out, or an answer brings a new seq or epoch, it stops serving from the
//     cache (forwarding instead) and clears it before it polls with the new
//     after.
//   - A cache fill is tagged with the seq applied when its request was sent;
//     a fill whose tag is older than the applied seq when the answer arrives
//     is not cached.
//
//   - When a poll answer renews a lease that had already run out (the poll
//     was sent after the end of the previous lease), the sidecar clears its
//     cache first: the PDP may have forgotten it, or published changes
//     without waiting for it, meanwhile.
//
// Publish, called after a change is applied and before it is answered,
// increments seq, wakes held polls, and returns once every sidecar that may
// still serve an answer cached before the change has either acknowledged
// the new seq (polled with after >= seq) or run out of the lease granted by
// its last poll before the change (arrival time + lease: the sidecar's own
// deadline, counted from the earlier send time, is no later). So when the
// change is answered, no sidecar serves an answer cached before it.
//
// Which sidecars may hold a cached answer. A sidecar caches only answers
// to evaluations it forwarded with its PDP-Sidecar-Id header, and only under the
// seq it had applied when it sent them; it drops them when it applies a
// new seq. The PDP notes when each evaluation of a subscriber arrives
// (before deciding it), and when it first answered that subscriber's poll
// with each seq. A subscriber that acknowledged seq S holds nothing unless
// an evaluation of it arrived after the PDP first told it S: an answer
// cached under S was asked after the sidecar learnt S. So a subscriber that
// never forwarded an evaluation (a flood of fresh ids, a sidecar idle since
// its last change) is not waited for, and costs a change nothing. An
// evaluation that arrives after Publish began is decided after the change
// was applied, and cannot hold an answer from before it.
//
// Subscribers are kept per application, at most MaxSidecarsPerApplication
// each: a poll from a new sidecar beyond it is refused with 503 for that
// application only; one application's sidecars never lock out another's.
//
// The feed is this process's. With several PDP replicas on PostgreSQL,
// pdp/changefeed/pgfeed shares the changes: every replica publishes each
// change of any replica to its own feed, and gates the leases it grants by
// its own registration lease (SetGate), so that a replica cut off from the
// shared feed stops renewing its sidecars' leases.

// Defaults and bounds of the change feed.
const (
	DefaultChangeLease = 2 * time.Second
	// MaxSidecarsPerApplication bounds the subscribers remembered per
	// application; a poll from a new sidecar of an application that has
	// that many is refused with 503 (and counted) until some of them are
	// forgotten. Other applications are not affected.
	MaxSidecarsPerApplication = 1000
	// forgetAfter leases without a poll, a subscriber is forgotten.
	forgetAfter = 10
)

// ErrNoLease refuses a poll while the process may not grant a lease: it
// cannot follow the changes of the other replicas (the API answers 503;
// the sidecar's lease runs out and it fails closed).
var ErrNoLease = errors.New("this PDP replica cannot follow the shared change feed, so it grants no lease; sidecars fail closed until it can")

// ErrTooManySidecars refuses a poll of a new sidecar of an application
// that has MaxSidecarsPerApplication subscribed (the API answers 503).
var ErrTooManySidecars = errors.New("too many sidecars of this application are subscribed to the change feed")

// Changes is the change feed: a sequence number bumped by every change
// that may alter a decision, and the subscribers (sidecars) that poll it.
// It is safe for concurrent use.
type Changes struct {
	lease   time.Duration
	epoch   string
	started time.Time

	seq atomic.Uint64 // starts at 1; written under mu

	mu      sync.Mutex
	changed chan struct{} // closed (and replaced) by every Publish
	polled  chan struct{} // closed (and replaced) by every poll that acknowledges a change
	closed  chan struct{} // closed by Close
	subs    map[subKey]*subscriber
	perApp  map[string]int // subscribers per application
	swept   time.Time

	// gate, when set, may refuse a poll that arrived at now (SetGate).
	gate func(now time.Time) error

	published   *prometheus.CounterVec
	waited      prometheus.Histogram
	lapsed      prometheus.Counter
	refused     prometheus.Counter
	subscribers *prometheus.Desc
	closeOnce   sync.Once
}

// subKey names a subscriber: sidecar ids are the application's to choose,
// so they are kept apart per application.
type subKey struct{ app, id string }

type subscriber struct {
	lastSeen time.Time // arrival of its last poll
	acked    uint64    // the after of its last poll, in this epoch
	// told and toldAt: the last seq its polls were answered with, and
	// when the PDP first answered it with that seq.
	told   uint64
	toldAt time.Time
	// clean: answers it may cache were asked after this time (toldAt of
	// the seq it acknowledged; zero when unknown).
	clean time.Time
	// asked: arrival of its last evaluation (zero: none).
	asked time.Time
}

// holds says whether the subscriber may hold a cached answer: an
// evaluation of it arrived after the seq it acknowledged was first told.
func (s *subscriber) holds() bool { return !s.asked.IsZero() && s.asked.After(s.clean) }

// SidecarRef names a sidecar: its application and id.
type SidecarRef struct{ Application, ID string }

func (r SidecarRef) String() string { return r.Application + "/" + r.ID }

// Published is what Publish did.
type Published struct {
	Seq uint64
	// Unacknowledged are the sidecars that were waited for and did not
	// acknowledge the change: their leases ran out (they fail closed
	// until they hear from the PDP again), or ctx ended first.
	Unacknowledged []SidecarRef
}

var _ prometheus.Collector = (*Changes)(nil)

// NewChanges returns a change feed whose answers grant sidecars lease
// (DefaultChangeLease when not positive) of serving from their caches.
func NewChanges(lease time.Duration) *Changes {
	return NewChangesSince(lease, time.Now())
}

// NewChangesSince is NewChanges for a process that started at started:
// Publish waits out the leases a previous process may have granted until
// started + lease.
func NewChangesSince(lease time.Duration, started time.Time) *Changes {
	if lease <= 0 {
		lease = DefaultChangeLease
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	c := &Changes{
		lease: lease, epoch: hex.EncodeToString(b), started: started,
		changed: make(chan struct{}), polled: make(chan struct{}), closed: make(chan struct{}),
		subs: make(map[subKey]*subscriber), perApp: make(map[string]int),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_changes_published_total",
			Help: "Changes published to the sidecars' change feed, by reason (delegation.revoke, consent.withdraw, policy.activate, …).",
		}, []string{"reason"}),
		waited: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pdp_changes_publish_wait_seconds",
			Help:    "Time a published change waited for the sidecars' acknowledgements (or their leases).",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2, 5, 10},
		}),
		lapsed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pdp_changes_lease_lapsed_total",
			Help: "Sidecars a published change waited for until their lease ran out, without an acknowledgement.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pdp_changes_refused_total",
			Help: "Polls of new sidecars refused because their application has MaxSidecarsPerApplication subscribed.",
		}),
		subscribers: prometheus.NewDesc("pdp_changes_subscribers",
			"Sidecars whose last poll's lease has not run out (they may serve from their caches).", nil, nil),
	}
	c.seq.Store(1)
	return c
}

// SetGate makes Poll ask gate before it grants a lease (a poll that
// arrived at now would be granted until now + Lease): an error refuses
// the poll. Call it before the feed serves polls.
func (c *Changes) SetGate(gate func(now time.Time) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gate = gate
}

// Lease is the time a poll answer lets a sidecar serve from its cache.
func (c *Changes) Lease() time.Duration { return c.lease }

// Epoch is this process's epoch.
func (c *Changes) Epoch() string { return c.epoch }

// Seq is the current sequence number (1 before the first change).
func (c *Changes) Seq() uint64 { return c.seq.Load() }

// Publish records a change (reason names it, for the metrics and errors):
// it increments seq, wakes held polls, and waits until every sidecar that
// may still serve answers cached before the change has acknowledged it or
// run out of its lease, or ctx ends (the error then says how many had not).
// A sidecar whose lease had already run out is not waited for. In the
// first lease after NewChanges it also waits for the rest of that lease:
// sidecars may hold leases granted by the previous process.
func (c *Changes) Publish(ctx context.Context, reason string) (uint64, error) {
	p, err := c.PublishReport(ctx, reason)
	return p.Seq, err
}

// PublishReport is Publish, and says which sidecars did not acknowledge
// the change.
// When ctx carries a Report (WithReport), the sidecars are added to it.
func (c *Changes) PublishReport(ctx context.Context, reason string) (p Published, err error) {
	start := time.Now()
	defer func() {
		c.waited.Observe(time.Since(start).Seconds())
		if r, ok := ctx.Value(reportKey{}).(*Report); ok {
			r.add(p)
		}
	}()
	c.published.WithLabelValues(reason).Inc()
	c.mu.Lock()
	n := c.seq.Add(1)
	close(c.changed)
	c.changed = make(chan struct{})
	deadlines := make(map[subKey]time.Time)
	for k, s := range c.subs {
		if dl := s.lastSeen.Add(c.lease); s.acked < n && start.Before(dl) && s.holds() {
			deadlines[k] = dl
		}
	}
	c.mu.Unlock()
	grace := c.started.Add(c.lease)
	var unacked []SidecarRef
	for {
		c.mu.Lock()
		now := time.Now()
		var next time.Time
		for k, dl := range deadlines {
			s := c.subs[k]
			switch {
			case s == nil || s.acked >= n:
				delete(deadlines, k)
			case !now.Before(dl):
				delete(deadlines, k)
				c.lapsed.Inc()
				unacked = append(unacked, SidecarRef{k.app, k.id})
			case next.IsZero() || dl.Before(next):
				next = dl
			}
		}
		if now.Before(grace) && (next.IsZero() || grace.Before(next)) {
			next = grace
		}
		polled := c.polled
		c.mu.Unlock()
		if next.IsZero() {
			return Published{Seq: n, Unacknowledged: sortRefs(unacked)}, nil
		}
		t := time.NewTimer(next.Sub(now))
		select {
		case <-polled:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			for k := range deadlines {
				unacked = append(unacked, SidecarRef{k.app, k.id})
			}
			return Published{Seq: n, Unacknowledged: sortRefs(unacked)},
				fmt.Errorf("change %d (%s): %d sidecars had not acknowledged it: %w", n, reason, len(deadlines), ctx.Err())
		}
		t.Stop()
	}
}

func sortRefs(refs []SidecarRef) []SidecarRef {
	slices.SortFunc(refs, func(a, b SidecarRef) int {
		return cmp.Or(cmp.Compare(a.Application, b.Application), cmp.Compare(a.ID, b.ID))
	})
	return refs
}

// Close answers held polls at once, and every later poll too: call it when
// the server shuts down. Publish keeps waiting as before.
func (c *Changes) Close() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		close(c.closed)
		c.mu.Unlock()
	})
}

// Poll registers a poll that arrived at now and says whether to hold it,
// and on what to wake it.
func (c *Changes) Poll(app, id string, after uint64, epoch string, now time.Time) (hold bool, changed, closed <-chan struct{}, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gate != nil {
		if err := c.gate(now); err != nil {
			return false, nil, nil, err
		}
	}
	if now.Sub(c.swept) > c.lease {
		c.swept = now
		for k, s := range c.subs {
			if now.Sub(s.lastSeen) > forgetAfter*c.lease {
				delete(c.subs, k)
				if c.perApp[k.app]--; c.perApp[k.app] <= 0 {
					delete(c.perApp, k.app)
				}
			}
		}
	}
	k := subKey{app, id}
	s := c.subs[k]
	if s == nil {
		if c.perApp[app] >= MaxSidecarsPerApplication {
			c.refused.Inc()
			return false, nil, nil, ErrTooManySidecars
		}
		s = &subscriber{}
		c.subs[k] = s
		c.perApp[app]++
	}
	seq := c.seq.Load()
	// after counts only if it is a seq of this epoch: a sidecar that has
	// not yet seen this epoch has applied none of its changes.
	ours := (epoch == "" || epoch == c.epoch) && after <= seq
	prev := s.acked
	s.lastSeen, s.acked = now, 0
	if ours {
		s.acked = after
	}
	// Answers it caches from now on are asked after it learnt after; if
	// the PDP does not know when that was, assume any.
	if ours && after == s.told && !s.toldAt.IsZero() {
		s.clean = s.toldAt
	} else if s.acked != prev {
		s.clean = time.Time{}
	}
	if s.acked > prev { // an acknowledgement: wake the waiting Publishes
		close(c.polled)
		c.polled = make(chan struct{})
	}
	select {
	case <-c.closed:
		return false, c.changed, c.closed, nil
	default:
	}
	return ours && after == seq, c.changed, c.closed, nil
}

// Told notes that a poll of the subscriber is answered with seq (now,
// before the answer is written).
func (c *Changes) Told(app, id string, seq uint64) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.subs[subKey{app, id}]; s != nil && s.told != seq {
		s.told, s.toldAt = seq, now
	}
}

// Asked notes an evaluation of a sidecar (its PDP-Sidecar-Id header) that
// arrived now, before it is decided: the sidecar may cache the answer, so
// changes wait for it until it acknowledges them. Unknown sidecars are
// ignored: a sidecar not subscribed holds no lease, and drops its cache
// when it gets one.
func (c *Changes) Asked(app, id string) {
	if id == "" {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.subs[subKey{app, id}]; s != nil {
		s.asked = now
	}
}

// Describe implements prometheus.Collector.
func (c *Changes) Describe(ch chan<- *prometheus.Desc) {
	c.published.Describe(ch)
	c.waited.Describe(ch)
	c.lapsed.Describe(ch)
	c.refused.Describe(ch)
	ch <- c.subscribers
}

// Collect implements prometheus.Collector.
func (c *Changes) Collect(ch chan<- prometheus.Metric) {
	c.published.Collect(ch)
	c.waited.Collect(ch)
	c.lapsed.Collect(ch)
	c.refused.Collect(ch)
	c.mu.Lock()
	now, live := time.Now(), 0
	for _, s := range c.subs {
		if now.Before(s.lastSeen.Add(c.lease)) {
			live++
		}
	}
	c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.subscribers, prometheus.GaugeValue, float64(live))
}

// Acked is the seq a subscriber last acknowledged in this epoch (0: none,
// or the subscriber is unknown).
func (c *Changes) Acked(app, id string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.subs[subKey{app, id}]; s != nil {
		return s.acked
	}
	return 0
}
