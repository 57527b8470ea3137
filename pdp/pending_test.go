package pdp

import (
	"context"
	"testing"
	"time"
)

// TestForgetOnPanicDropsTheReservations: when deciding panics after a
// change was reserved (the api layer recovers, the process goes on), the
// reservation is dropped; left pending, it would hold back every later
// commit of its key, and the key could never be evicted.
func TestForgetOnPanicDropsTheReservations(t *testing.T) {
	e := &Engine{velocity: &Velocity{}}
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	rule := windowRule{window: time.Hour, block: time.Hour, threshold: 2}
	reserve := func(p *Pending) uint64 {
		_, id := e.velocity.values.reserve("ip", windowChange{owner: p.owner, rule: rule, ev: windowEvent{who: "u", at: at}}, 10)
		p.reserve(pendingItem{id: id, value: "ip"})
		return id
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not go on")
			}
		}()
		var p *Pending
		defer forgetOnPanic(context.Background(), &p)
		p = &Pending{e: e, owner: 1}
		reserve(p)
		panic("deciding failed")
	}()
	later := &Pending{e: e, owner: 2}
	reserve(later)
	later.Commit(context.Background())
	e.velocity.values.mu.Lock()
	defer e.velocity.values.mu.Unlock()
	tally := e.velocity.values.keys["ip"]
	if tally == nil || len(tally.pending) != 0 || len(tally.events) != 1 {
		t.Fatalf("after the panic, a later commit of the key: %+v, want it made (1 event, nothing pending)", tally)
	}
}
