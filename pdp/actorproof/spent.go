package actorproof

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Spent remembers the jti of every token that proved a change, until the
// token can no longer verify.
type Spent interface {
	// Spend records jti as used until until, and reports whether it was
	// fresh (false: it was used before and is still remembered). An error
	// wraps ErrReplayUnavailable: the use could not be recorded.
	Spend(ctx context.Context, jti string, until time.Time) (bool, error)
}

// DefaultMemoryCapacity is how many token uses a MemorySpent remembers at
// most when no capacity is given.
const DefaultMemoryCapacity = 100_000

// MemorySpent is the Spent of one process: a map of the jtis in use and a
// heap by expiry; every Spend first forgets what has expired. It holds at
// most its capacity: when that many unexpired uses are remembered, Spend
// refuses (ErrReplayUnavailable, fail closed) rather than forget one.
// Safe for concurrent use.
type MemorySpent struct {
	mu    sync.Mutex
	max   int
	now   func() time.Time
	until map[string]time.Time
	order expiries
	full  atomic.Uint64 // spends refused because the capacity was reached
}

var _ Spent = (*MemorySpent)(nil)

// NewMemorySpent returns a MemorySpent remembering at most capacity uses
// (DefaultMemoryCapacity when capacity <= 0); now is the clock (nil:
// time.Now).
func NewMemorySpent(capacity int, now func() time.Time) *MemorySpent {
	if capacity <= 0 {
		capacity = DefaultMemoryCapacity
	}
	if now == nil {
		now = time.Now
	}
	return &MemorySpent{max: capacity, now: now, until: map[string]time.Time{}}
}

// Spend implements Spent.
func (m *MemorySpent) Spend(_ context.Context, jti string, until time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forget(m.now())
	if _, used := m.until[jti]; used {
		return false, nil
	}
	if len(m.until) >= m.max {
		m.full.Add(1)
		return false, fmt.Errorf("%w: %d unexpired token uses are remembered, the most auth.actor_tokens.single_use_capacity allows", ErrReplayUnavailable, m.max)
	}
	m.until[jti] = until
	heap.Push(&m.order, expiry{jti: jti, until: until})
	return true, nil
}

// Len is the number of uses remembered (expired ones included until the
// next Spend).
func (m *MemorySpent) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.until)
}

// Full counts the spends refused because the capacity was reached.
func (m *MemorySpent) Full() uint64 { return m.full.Load() }

// forget drops the uses that expired by now.
func (m *MemorySpent) forget(now time.Time) {
	for len(m.order) > 0 && !m.order[0].until.After(now) {
		e := heap.Pop(&m.order).(expiry)
		delete(m.until, e.jti)
	}
}

type expiry struct {
	jti   string
	until time.Time
}

// expiries is a min-heap of uses by expiry (container/heap).
type expiries []expiry

func (h expiries) Len() int           { return len(h) }
func (h expiries) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiries) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiries) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiries) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
