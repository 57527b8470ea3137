package changefeed

import (
	"errors"
	"testing"
	"time"
)

// TestGateRefusesLeases: with a gate set, a poll is granted a lease only
// when the gate lets it; a refused poll registers no subscriber.
func TestGateRefusesLeases(t *testing.T) {
	ch := newTestChanges(time.Second)
	until := time.Now().Add(1500 * time.Millisecond)
	ch.SetGate(func(now time.Time) error {
		if now.Add(ch.Lease()).After(until) {
			return ErrNoLease
		}
		return nil
	})
	for _, tc := range []struct {
		name string
		at   time.Time
		err  error
	}{
		{"lease within the replica's", time.Now(), nil},
		{"lease beyond the replica's", until, ErrNoLease},
	} {
		_, _, _, err := ch.Poll("app", tc.name, 1, ch.Epoch(), tc.at)
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
	if _, ok := ch.subs[subKey{"app", "lease beyond the replica's"}]; ok {
		t.Error("a refused poll registered a subscriber")
	}
}
