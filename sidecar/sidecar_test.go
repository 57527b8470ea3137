package sidecar

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/authzen"
	"github.com/ciampdp/pdp/pdp/trail"
)

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	for _, tc := range []struct {
		name   string
		change func(*Config)
		valid  bool
	}{
		{"defaults", func(*Config) {}, true},
		{"unix socket", func(c *Config) { c.Listen = "unix:/tmp/s.sock" }, true},
		{"no socket path", func(c *Config) { c.Listen = "unix:" }, false},
		{"central not a URL", func(c *Config) { c.CentralURL = "pdp:8080" }, false},
		{"no timeout", func(c *Config) { c.Timeout = 0 }, false},
		{"cache without ttl", func(c *Config) { c.CacheTTL = 0 }, false},
		{"no cache, no ttl", func(c *Config) { c.CacheSize, c.CacheTTL = 0, 0 }, true},
		{"spool mode", func(c *Config) { c.SpoolMode = "later" }, false},
		{"degraded without staleness", func(c *Config) { c.Degraded = Degraded{Actions: []string{"view"}} }, false},
		{"breaker", func(c *Config) { c.Breaker.Failures = 0 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			err := c.Validate()
			if (err == nil) != tc.valid || err != nil && !errors.Is(err, ErrConfig) {
				t.Fatalf("Validate = %v, want valid %v", err, tc.valid)
			}
		})
	}
}

// TestCacheServesOnlyWhatStillHolds: an answer is served only under the
// change sequence and epoch it was decided under, within the lease and
// the TTL; an answer to a question sent before a change is not cached.
func TestCacheServesOnlyWhatStillHolds(t *testing.T) {
	c := newCache(10, time.Minute, time.Hour)
	t0 := time.Now()
	ans := entry{answer: authzen.DecisionResponse{Decision: true, Context: &authzen.DecisionContext{DecisionID: "d1"}}}
	if _, ok := c.lookup("k", t0); ok {
		t.Fatal("hit in an empty cache")
	}
	c.apply(changeAnswer{Seq: 1, Epoch: "e1", LeaseMS: 2000}, "", t0)
	st := c.state.Load()
	c.add("k", ans, st)
	for _, tc := range []struct {
		name string
		at   time.Time
		hit  bool
	}{
		{"within the lease", t0.Add(time.Second), true},
		{"lease over", t0.Add(3 * time.Second), false},
	} {
		if _, ok := c.lookup("k", tc.at); ok != tc.hit {
			t.Errorf("%s: hit %v, want %v", tc.name, ok, tc.hit)
		}
	}
	// Same seq again, asked before the lease ran out, renews the lease and
	// keeps the entry.
	c.apply(changeAnswer{Seq: 1, Epoch: "e1", LeaseMS: 2000}, "", t0.Add(1500*time.Millisecond))
	if _, ok := c.lookup("k", t0.Add(3*time.Second)); !ok {
		t.Fatal("a renewed lease did not serve the entry")
	}
	// A lease renewed only after it ran out clears the cache: the central
	// PDP may have answered changes without waiting for this sidecar.
	c.apply(changeAnswer{Seq: 1, Epoch: "e1", LeaseMS: 2000}, "", t0.Add(4*time.Second))
	if _, ok := c.lookup("k", t0.Add(4500*time.Millisecond)); ok {
		t.Fatal("served an entry across a lapsed lease")
	}
	c.add("k", ans, c.state.Load())
	// A change clears it; a stale answer decided before the change is not
	// cached afterwards.
	c.apply(changeAnswer{Seq: 2, Epoch: "e1", LeaseMS: 2000}, "", t0.Add(2*time.Second))
	if _, ok := c.lookup("k", t0.Add(3*time.Second)); ok {
		t.Fatal("served across a change")
	}
	c.add("k", ans, st) // st is from before the change
	if _, ok := c.lookup("k", t0.Add(3*time.Second)); ok {
		t.Fatal("cached an answer to a question sent before the change")
	}
	// A new epoch (the central PDP restarted) clears it too.
	c.add("k", ans, c.state.Load())
	c.apply(changeAnswer{Seq: 2, Epoch: "e2", LeaseMS: 2000}, "", t0.Add(2*time.Second))
	if _, ok := c.lookup("k", t0.Add(3*time.Second)); ok {
		t.Fatal("served across a restart of the central PDP")
	}
	// Degraded mode finds answers decided under the current state only.
	c.add("k", ans, c.state.Load())
	if _, ok := c.staleEntry("k"); !ok {
		t.Fatal("no copy for degraded answers")
	}
}

func TestBreaker(t *testing.T) {
	b := &breaker{failures: 2, cooldown: time.Second}
	t0 := time.Now()
	steps := []struct {
		do    string
		at    time.Duration
		allow bool
		state string
	}{
		{"fail", 0, true, "closed"},
		{"fail", 0, false, "open"},
		{"", 500 * time.Millisecond, false, "open"},
		{"", 1500 * time.Millisecond, true, "half_open"}, // one probe
		{"", 1500 * time.Millisecond, false, "half_open"},
		{"ok", 1500 * time.Millisecond, true, "closed"},
	}
	for i, s := range steps {
		now := t0.Add(s.at)
		switch s.do {
		case "fail":
			b.fail(now)
		case "ok":
			b.ok()
		}
		if got := b.allow(now); got != s.allow {
			t.Fatalf("step %d: allow = %v, want %v", i, got, s.allow)
		}
		if s.do == "ok" {
			b.ok()
		}
		if got := b.state(now); got != s.state && s.do != "" {
			t.Errorf("step %d: state %s, want %s", i, got, s.state)
		}
	}
}

func TestChangeClearsDegradedCopies(t *testing.T) {
	c := newCache(10, time.Minute, time.Hour)
	t0 := time.Now()
	c.apply(changeAnswer{Seq: 1, Epoch: "e", LeaseMS: 2000}, "", t0)
	c.add("k", entry{answer: authzen.DecisionResponse{Decision: true}}, c.state.Load())
	c.apply(changeAnswer{Seq: 2, Epoch: "e", LeaseMS: 2000}, "", t0)
	if _, ok := c.staleEntry("k"); ok {
		t.Fatal("an answer decided before a change survives for degraded mode")
	}
}

// TestAsyncSpoolFailureRefusesLaterAnswers: when the async spool cannot
// write, later answers are refused (the sidecar then denies) and readiness
// says so, instead of losing records silently.
func TestAsyncSpoolFailureRefusesLaterAnswers(t *testing.T) {
	sp, err := openSpool(t.TempDir(), SpoolAsync, DefaultSpoolSegmentBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	_ = sp.cur.Load().Close() // the disk goes away
	rec := trail.Record{Kind: KindAnswer, ID: "a1", Time: time.Now(), Body: []byte(`{}`)}
	if err := sp.add(context.Background(), rec); err != nil {
		t.Fatalf("the first add is buffered: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for sp.err() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if sp.err() == nil {
		t.Fatal("the drainer's write failure was not kept")
	}
	if err := sp.add(context.Background(), rec); err == nil {
		t.Fatal("an add after the failure was accepted")
	}
}

// TestLeaseLeftMS: the status says no lease only once the cache has
// stopped serving from it (cache.lookup serves while now is before the
// lease's end).
func TestLeaseLeftMS(t *testing.T) {
	for _, tc := range []struct {
		left time.Duration
		want int64
	}{
		{-time.Second, 0},
		{0, 0},
		{time.Nanosecond, 1},
		{400 * time.Microsecond, 1},
		{time.Millisecond, 1},
		{time.Millisecond + 1, 2},
		{2 * time.Second, 2000},
	} {
		if got := leaseLeftMS(tc.left); got != tc.want {
			t.Errorf("leaseLeftMS(%v) = %d, want %d", tc.left, got, tc.want)
		}
	}
}
