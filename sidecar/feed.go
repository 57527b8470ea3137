package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/ciampdp/pdp/pdp/authzen"
)

// feedState is what the sidecar knows of the central PDP's changes.
type feedState struct {
	seq        uint64
	epoch      string
	validUntil time.Time // cached answers may be served until then
	policy     string
	from       string // the replica whose feed this is
	// cleared counts the cache clears: an answer asked before a clear is
	// not cached after it.
	cleared uint64
}

// changeAnswer is the central PDP's answer to GET /v1/changes.
type changeAnswer struct {
	Seq           uint64 `json:"seq"`
	Epoch         string `json:"epoch"`
	LeaseMS       int64  `json:"lease_ms"`
	PolicyVersion string `json:"policy_version"`
}

// entry is one cached answer and the state it was decided under.
type entry struct {
	answer authzen.DecisionResponse
	action string
	stored time.Time
	seq    uint64
	epoch  string
}

// cache is the decision cache with the change feed that keeps it honest.
type cache struct {
	lru   *lru.LRU[string, entry] // nil: caching off
	state atomic.Pointer[feedState]
	// stale keeps answers past their validity for degraded mode only.
	stale *lru.LRU[string, entry]
}

func newCache(size int, ttl, maxStale time.Duration) *cache {
	c := &cache{}
	c.state.Store(&feedState{})
	if size > 0 {
		c.lru = lru.NewLRU[string, entry](size, nil, ttl)
		if maxStale > 0 {
			c.stale = lru.NewLRU[string, entry](size, nil, maxStale)
		}
	}
	return c
}

// lookup returns a cached answer only if everything still holds.
func (c *cache) lookup(key string, now time.Time) (entry, bool) {
	if c.lru == nil {
		return entry{}, false
	}
	st := c.state.Load()
	if !now.Before(st.validUntil) {
		return entry{}, false
	}
	e, ok := c.lru.Get(key)
	if !ok || e.seq != st.seq || e.epoch != st.epoch {
		return entry{}, false
	}
	return e, true
}

// add caches an answer decided under st, unless a change (or a restart of
// the central PDP) came since the question was sent: then the answer may
// predate it, nor after the cache was cleared for a lapsed lease. A mere
// lease renewal does not matter.
func (c *cache) add(key string, e entry, st *feedState) {
	if c.lru == nil {
		return
	}
	if cur := c.state.Load(); cur.seq != st.seq || cur.epoch != st.epoch || cur.cleared != st.cleared {
		return
	}
	e.seq, e.epoch = st.seq, st.epoch
	c.lru.Add(key, e)
	if c.stale != nil {
		c.stale.Add(key, e)
	}
}

// staleEntry returns an answer for degraded mode, however old (up to the
// stale cache's TTL, max_staleness).
func (c *cache) staleEntry(key string) (entry, bool) {
	if c.stale == nil {
		return entry{}, false
	}
	return c.stale.Get(key)
}

// apply takes a change-feed answer received for a poll sent at sent.
//
// A renewal of a lease that had run out before the poll was sent clears
// the cache too: while the sidecar was not heard from, the central PDP may
// have forgotten it and published changes without waiting for it (it
// waits only for sidecars it knows to hold answers).
func (c *cache) apply(a changeAnswer, from string, sent time.Time) (changed bool) {
	old := c.state.Load()
	changed = old.seq != a.Seq || old.epoch != a.Epoch || old.from != from
	cleared := old.cleared
	if lapsed := !sent.Before(old.validUntil); changed || lapsed {
		cleared++
	}
	if cleared != old.cleared && c.lru != nil {
		c.lru.Purge()
		// Degraded answers too: once a change is acknowledged, no answer
		// decided before it may come back, not even during an outage.
		if c.stale != nil {
			c.stale.Purge()
		}
	}
	lease := time.Duration(a.LeaseMS) * time.Millisecond
	c.state.Store(&feedState{seq: a.Seq, epoch: a.Epoch, validUntil: sent.Add(lease), policy: a.PolicyVersion, from: from, cleared: cleared})
	return changed
}

// poll follows the central PDP's change feed until ctx ends: each answer
// clears the cache when something changed and renews the lease; the next
// poll acknowledges it.
func (s *Sidecar) poll(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		st := s.cache.state.Load()
		sent := time.Now()
		from := s.central()
		a, err := s.changes(ctx, from, st)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.pollFailures.Add(1)
			s.failover(from)
			s.log.Debug("change feed unreachable", "error", err, "retry_in", backoff)
			sleep(ctx, jitter(backoff))
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if s.cache.apply(a, from, sent) {
			s.log.Debug("central PDP changed: cache cleared", "seq", a.Seq, "epoch", a.Epoch)
		}
	}
}

func (s *Sidecar) changes(ctx context.Context, from string, st *feedState) (changeAnswer, error) {
	q := url.Values{"after": {strconv.FormatUint(st.seq, 10)}, "wait": {s.cfg.PollWait.String()}}
	// The epoch of another replica (after a move) is sent too: it is not
	// the new one's, which then answers at once with its own.
	if st.epoch != "" {
		q.Set("epoch", st.epoch)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PollWait+s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, from+"/v1/changes?"+q.Encode(), nil)
	if err != nil {
		return changeAnswer{}, err
	}
	s.headers(req)
	res, err := s.hc.Do(req)
	if err != nil {
		return changeAnswer{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	if err != nil {
		return changeAnswer{}, err
	}
	if res.StatusCode != http.StatusOK {
		return changeAnswer{}, fmt.Errorf("change feed: %s: %s", res.Status, body)
	}
	var a changeAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return changeAnswer{}, fmt.Errorf("change feed: %w", err)
	}
	if a.Seq == 0 || a.Epoch == "" || a.LeaseMS <= 0 {
		return changeAnswer{}, fmt.Errorf("change feed: incomplete answer %s", body)
	}
	return a, nil
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
