package relations

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestOnChangeReportsOthersWrites: OnChange is called for a write of
// another client of the same SpiceDB (another replica, an import).
func TestOnChangeReportsOthersWrites(t *testing.T) {
	var changes atomic.Int64
	e := openRemote(t, Config{OnChange: func() { changes.Add(1) }})
	peer := e.peer(t, Config{})
	waitLive := time.Now().Add(10 * time.Second)
	live := func() bool {
		c := e.Cache()
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.live
	}
	for !live() && time.Now().Before(waitLive) {
		time.Sleep(10 * time.Millisecond)
	}
	mustWrite(t, peer, touch(rel(account("other"), "owner", user("otto"))))
	deadline := time.Now().Add(10 * time.Second)
	for changes.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("OnChange not called for another client's write within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
