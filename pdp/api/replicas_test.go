package api

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/changefeed"
)

// TestPollRefusedWithoutReplicaLease: a replica whose gate refuses (it
// cannot follow the shared change feed) answers polls 503, and grants
// leases again once the gate lets them through.
func TestPollRefusedWithoutReplicaLease(t *testing.T) {
	ch := newTestChanges(time.Second)
	var cutOff atomic.Bool
	ch.SetGate(func(time.Time) error {
		if cutOff.Load() {
			return changefeed.ErrNoLease
		}
		return nil
	})
	e := newFeedEnv(t, Config{}, Deps{Changes: ch})
	for _, tc := range []struct {
		cut  bool
		code int
		want string
	}{
		{false, http.StatusOK, `"seq":1`},
		{true, http.StatusServiceUnavailable, "cannot follow the shared change feed"},
		{false, http.StatusOK, `"lease_ms":1000`},
	} {
		cutOff.Store(tc.cut)
		r := e.poll(context.Background(), "sc", "", "after=0&wait=0s")
		if r.code != tc.code || !strings.Contains(r.body, tc.want) {
			t.Errorf("cut off %v: %d %s, want %d with %q", tc.cut, r.code, r.body, tc.code, tc.want)
		}
	}
}
