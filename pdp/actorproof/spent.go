package actorproof

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Spent remembers the issuer and jti of every token that proved a change,
// until the token can no longer verify. A jti is unique per issuer only
// (RFC 7519, 4.1.7): two issuers' tokens with one jti are two uses.
type Spent interface {
	// Spend records issuer's jti as used until until, and reports whether
	// it was fresh (false: it was used before and is still remembered).
	// An error wraps ErrReplayUnavailable: the use could not be recorded.
	Spend(ctx context.Context, issuer, jti string, until time.Time) (bool, error)
}

// use is what a store remembers a use by: the token's issuer and jti.
type use struct {
	iss, jti string
}

// DefaultMemoryCapacity is how many token uses a MemorySpent remembers at
// most when no capacity is given.
const DefaultMemoryCapacity = 100_000

// MemorySpent is the Spent of one process: a map of the uses and a
// heap by expiry; every Spend first forgets what has expired. It holds at
// most its capacity: when that many unexpired uses are remembered, Spend
// refuses (ErrReplayUnavailable, fail closed) rather than forget one. One
// subject holds at most a hundredth of it (at least 100, SpendFor): a
// user minting token after token fills their own share, not everyone's.
// It remembers nothing from before it was made (a restart): see
// RemembersSince. Safe for concurrent use.
type MemorySpent struct {
	mu      sync.Mutex
	max     int
	perSub  int
	now     func() time.Time
	since   time.Time
	until   map[use]spentUse
	bySub   map[string]int
	order   expiries
	full    atomic.Uint64 // spends refused because the capacity was reached
	subFull atomic.Uint64 // spends refused because the subject's share was reached
}

type spentUse struct {
	until time.Time
	sub   string
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
	return &MemorySpent{max: capacity, perSub: max(capacity/100, 100), now: now, since: now(),
		until: map[use]spentUse{}, bySub: map[string]int{}}
}

// Spend implements Spent, for no subject in particular.
func (m *MemorySpent) Spend(ctx context.Context, issuer, jti string, until time.Time) (bool, error) {
	return m.SpendFor(ctx, "", issuer, jti, until)
}

// SpendFor is Spend for a token of subject sub: refused (ErrSubjectFull)
// when sub already holds its share of the unexpired uses.
func (m *MemorySpent) SpendFor(_ context.Context, sub, issuer, jti string, until time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forget(m.now())
	k := use{iss: issuer, jti: jti}
	if _, used := m.until[k]; used {
		return false, nil
	}
	if len(m.until) >= m.max {
		m.full.Add(1)
		return false, fmt.Errorf("%w: %d unexpired token uses are remembered, the most auth.actor_tokens.single_use_capacity allows", ErrReplayUnavailable, m.max)
	}
	if sub != "" && m.bySub[sub] >= m.perSub {
		m.subFull.Add(1)
		return false, fmt.Errorf("%w: user %q has used %d tokens that have not expired yet, the most one user may (a hundredth of auth.actor_tokens.single_use_capacity): wait for them to expire", ErrSubjectFull, sub, m.perSub)
	}
	m.until[k] = spentUse{until: until, sub: sub}
	if sub != "" {
		m.bySub[sub]++
	}
	heap.Push(&m.order, expiry{use: k, until: until})
	return true, nil
}

// ErrSubjectFull: one subject holds its whole share of a MemorySpent.
var ErrSubjectFull = errors.New("too many token uses of one user")

// RemembersSince is when the store started remembering: a token issued
// before it may have been used before (by this process before a restart).
func (m *MemorySpent) RemembersSince() time.Time { return m.since }

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
		if u := m.until[e.use]; u.sub != "" {
			if m.bySub[u.sub]--; m.bySub[u.sub] <= 0 {
				delete(m.bySub, u.sub)
			}
		}
		delete(m.until, e.use)
	}
}

type expiry struct {
	use   use
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
