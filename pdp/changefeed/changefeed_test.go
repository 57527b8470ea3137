package changefeed

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// newTestChanges is a feed past its start grace (no previous process).
func newTestChanges(lease time.Duration) *Changes {
	return NewChangesSince(lease, time.Now().Add(-time.Hour))
}

// TestChangesCapIsPerApplication (B8): one application's sidecars fill
// only that application's share of the subscribers.
func TestChangesCapIsPerApplication(t *testing.T) {
	ch := newTestChanges(time.Minute)
	now := time.Now()
	for i := range MaxSidecarsPerApplication {
		if _, _, _, err := ch.Poll("budget-app", fmt.Sprintf("f-%d", i), 0, "", now); err != nil {
			t.Fatalf("poll %d: %v", i, err)
		}
	}
	if _, _, _, err := ch.Poll("budget-app", "one-more", 0, "", now); !errors.Is(err, ErrTooManySidecars) {
		t.Fatalf("a poll beyond budget-app's cap: %v, want ErrTooManySidecars", err)
	}
	if _, _, _, err := ch.Poll("mobile-banking", "real", 0, "", now); err != nil {
		t.Fatalf("mobile-banking's sidecar was locked out by budget-app's: %v", err)
	}
}

// TestSubscribersAreKeptPerApplication: the same sidecar id under two
// applications is two subscribers.
func TestSubscribersAreKeptPerApplication(t *testing.T) {
	ch := newTestChanges(time.Minute)
	if _, _, _, err := ch.Poll("mobile-banking", "sc", 1, ch.Epoch(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := ch.Acked("mobile-banking", "sc"); got != 1 {
		t.Errorf("mobile-banking/sc acked %d, want 1", got)
	}
	if got := ch.Acked("web-banking", "sc"); got != 0 {
		t.Errorf("web-banking/sc acked %d, want 0 (unknown)", got)
	}
	if _, ok := ch.subs[subKey{"web-banking", "sc"}]; ok {
		t.Error("a subscriber under another application")
	}
}

// TestPublish: who a change waits for, called on the feed directly.
func TestPublish(t *testing.T) {
	const lease = 300 * time.Millisecond
	for _, tc := range []struct {
		name    string
		asked   bool // the sidecar forwarded an evaluation after it polled
		ack     bool // it acknowledges the change
		unacked int
		atLeast time.Duration
	}{
		{name: "a sidecar that asked nothing is not waited for"},
		{name: "an acknowledging sidecar is waited for until it acknowledges", asked: true, ack: true},
		{name: "a silent sidecar is waited for until its lease runs out", asked: true, unacked: 1, atLeast: lease / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := newTestChanges(lease)
			epoch := ch.Epoch()
			if _, _, _, err := ch.Poll("app", "sc", 1, epoch, time.Now()); err != nil {
				t.Fatal(err)
			}
			ch.Told("app", "sc", ch.Seq())
			if tc.asked {
				ch.Asked("app", "sc")
			}
			if tc.ack {
				go func() {
					for ch.Seq() < 2 {
						time.Sleep(time.Millisecond)
					}
					_, _, _, _ = ch.Poll("app", "sc", 2, epoch, time.Now())
				}()
			}
			start := time.Now()
			p, err := ch.PublishReport(context.Background(), "test")
			took := time.Since(start)
			if err != nil || p.Seq != 2 || len(p.Unacknowledged) != tc.unacked {
				t.Fatalf("PublishReport: %+v %v, want seq 2 and %d unacknowledged", p, err, tc.unacked)
			}
			if took < tc.atLeast || took > 2*lease {
				t.Errorf("took %v, want at least %v and within the lease", took, tc.atLeast)
			}
			if tc.unacked == 1 && p.Unacknowledged[0] != (SidecarRef{"app", "sc"}) {
				t.Errorf("unacknowledged %v", p.Unacknowledged)
			}
		})
	}
}
