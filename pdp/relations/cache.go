package relations

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// FactCache keeps check results in front of another Checker, without ever
// answering from facts older than the freshness a read asks for.
//
// How: the cache serves one snapshot of the facts at a time. The first read
// of a snapshot asks the inner Checker for facts at least as fresh as the
// floor (the Store's newest token, see floor.go) and pins the revision
// SpiceDB actually read at (the answer's CheckedAt token); every later miss
// reads exactly that pinned snapshot, and every hit comes from it. So all
// answers of one call, hits and misses, come from one revision, which is the
// Revision reported. A new snapshot starts (and every entry of the old one
// becomes unreachable: entries are keyed by snapshot generation and check)
// when
//   - the floor moves (Advance: a write through the Store, an observed
//     token, a barrier after changes by others),
//   - the change feed reports a change (Invalidate: the Store follows
//     SpiceDB's Watch stream, which also sees writes of other replicas),
//   - the pinned snapshot is older than the maximum age.
//
// Reads asking for another freshness than the floor, and all reads while the
// change feed is down (SetLive(false)), go to the inner Checker uncached.
type FactCache struct {
	inner   Checker
	entries *lru.Cache[cacheKey, Result]
	maxAge  time.Duration
	now     func() time.Time

	mu       sync.Mutex
	gen      uint64    // snapshot generation; part of every key
	floor    string    // the freshness the pinned snapshot satisfies
	pin      string    // token of the snapshot of generation gen; "" until read
	pinnedAt time.Time // when the pin was read (or rather, asked for)
	live     bool      // the change feed is running

	hits, misses, snapshots atomic.Uint64
}

var _ Checker = (*FactCache)(nil)

type cacheKey struct {
	gen   uint64
	check string
}

// NewFactCache returns a cache of up to size results in front of inner,
// reusing one snapshot for at most maxAge. It serves nothing until the first
// SetLive(true).
func NewFactCache(inner Checker, size int, maxAge time.Duration) (*FactCache, error) {
	entries, err := lru.New[cacheKey, Result](size)
	if err != nil {
		return nil, fmt.Errorf("relations: fact cache: %w", err)
	}
	return &FactCache{inner: inner, entries: entries, maxAge: maxAge, now: time.Now}, nil
}

// Advance moves the floor: reads from now on must be at least as fresh as
// token. It starts a new snapshot.
func (c *FactCache) Advance(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.floor = token
	c.resetLocked()
}

// Invalidate starts a new snapshot, keeping the floor: something changed.
func (c *FactCache) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked()
}

// SetLive tells the cache whether the change feed that calls Invalidate is
// running. Without it the cache cannot know when others change facts, so it
// passes every read through.
func (c *FactCache) SetLive(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = live
	c.resetLocked()
}

func (c *FactCache) resetLocked() {
	c.gen++
	c.pin = ""
	c.snapshots.Add(1)
}

// CheckBulkAt answers from the pinned snapshot when at asks for the floor,
// and passes other reads through.
func (c *FactCache) CheckBulkAt(ctx context.Context, checks []Check, at Consistency) (Results, error) {
	c.mu.Lock()
	now := c.now()
	usable := c.live && at.Exact == "" && at.AtLeast == c.floor
	if usable && c.pin != "" && now.Sub(c.pinnedAt) >= c.maxAge {
		c.resetLocked()
	}
	gen, pin := c.gen, c.pin
	c.mu.Unlock()

	if !usable {
		c.misses.Add(uint64(len(checks)))
		return c.inner.CheckBulkAt(ctx, checks, at)
	}

	keys := make([]cacheKey, len(checks))
	for i, ch := range checks {
		k, err := checkKey(ch)
		if err != nil {
			return Results{}, fmt.Errorf("relations: check %d (%s): %w", i, ch, err)
		}
		keys[i] = cacheKey{gen: gen, check: k}
	}

	if pin == "" {
		// First read of this snapshot: at least as fresh as the floor; pin
		// what SpiceDB read at, unless something changed meanwhile.
		res, err := c.inner.CheckBulkAt(ctx, checks, at)
		if err != nil {
			return Results{}, err
		}
		c.misses.Add(uint64(len(checks)))
		c.mu.Lock()
		if c.gen == gen && c.pin == "" && res.Revision != "" {
			c.pin, c.pinnedAt = res.Revision, now
		}
		keep := c.gen == gen && c.pin == res.Revision
		c.mu.Unlock()
		if keep {
			c.store(keys, res.Items)
		}
		return res, nil
	}

	out := Results{Items: make([]Result, len(checks)), Revision: pin}
	var missIdx []int
	for i, k := range keys {
		if r, ok := c.entries.Get(k); ok {
			r.Check = checks[i]
			r.MissingContext = slices.Clone(r.MissingContext)
			out.Items[i] = r
			continue
		}
		missIdx = append(missIdx, i)
	}
	c.hits.Add(uint64(len(checks) - len(missIdx)))
	if len(missIdx) == 0 {
		return out, nil
	}
	c.misses.Add(uint64(len(missIdx)))

	missing := make([]Check, len(missIdx))
	for j, i := range missIdx {
		missing[j] = checks[i]
	}
	res, err := c.inner.CheckBulkAt(ctx, missing, Consistency{Exact: pin})
	if err != nil {
		// The pinned snapshot may be unreadable (garbage-collected,
		// another datastore): start afresh next time, fail this one.
		c.mu.Lock()
		if c.gen == gen {
			c.resetLocked()
		}
		c.mu.Unlock()
		return Results{}, err
	}
	missKeys := make([]cacheKey, len(missIdx))
	for j, i := range missIdx {
		out.Items[i] = res.Items[j]
		missKeys[j] = keys[i]
	}
	c.store(missKeys, res.Items)
	return out, nil
}

func (c *FactCache) store(keys []cacheKey, items []Result) {
	for i, k := range keys {
		r := items[i]
		r.Check = Check{} // the caller's check is put back on a hit
		c.entries.Add(k, r)
	}
}

// CacheStats are the fact cache's counters since it was made.
type CacheStats struct {
	Hits, Misses uint64 // check items answered from the cache / by SpiceDB
	Snapshots    uint64 // snapshots started (writes, changes, age, feed restarts)
	Entries      int    // results held, including unreachable ones of old snapshots
	Live         bool   // the change feed is running, so hits are possible
}

// Stats returns the counters.
func (c *FactCache) Stats() CacheStats {
	c.mu.Lock()
	live := c.live
	c.mu.Unlock()
	return CacheStats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Snapshots: c.snapshots.Load(),
		Entries: c.entries.Len(), Live: live,
	}
}

var (
	descHits      = prometheus.NewDesc("pdp_relations_cache_hits_total", "Relationship check items answered from the fact cache.", nil, nil)
	descMisses    = prometheus.NewDesc("pdp_relations_cache_misses_total", "Relationship check items answered by SpiceDB.", nil, nil)
	descSnapshots = prometheus.NewDesc("pdp_relations_cache_snapshots_total", "Fact snapshots started by the cache (writes, changes seen on the Watch stream, age).", nil, nil)
	descEntries   = prometheus.NewDesc("pdp_relations_cache_entries", "Check results held by the fact cache.", nil, nil)
	descLive      = prometheus.NewDesc("pdp_relations_cache_live", "1 when the fact cache follows SpiceDB's change stream and may answer, 0 when it passes every check through.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *FactCache) Describe(ch chan<- *prometheus.Desc) {
	ch <- descHits
	ch <- descMisses
	ch <- descSnapshots
	ch <- descEntries
	ch <- descLive
}

// Collect implements prometheus.Collector.
func (c *FactCache) Collect(ch chan<- prometheus.Metric) {
	s := c.Stats()
	live := 0.0
	if s.Live {
		live = 1
	}
	ch <- prometheus.MustNewConstMetric(descHits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(descMisses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(descSnapshots, prometheus.CounterValue, float64(s.Snapshots))
	ch <- prometheus.MustNewConstMetric(descEntries, prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(descLive, prometheus.GaugeValue, live)
}
