package pdp

import (
	"context"
	"testing"
)

// TestOutageAtThresholdPublishes: a key one event short of its threshold
// while every record fails (a trail outage). Each failing decision
// reserves the event that reaches the threshold (begins the block as the
// decisions see it) and is dropped; the sidecars are told (a publish,
// waiting on them) only when another decision was answered with that
// pending block: once per block seen and lost, not once per failure.
func TestOutageAtThresholdPublishes(t *testing.T) {
	ctx := context.Background()
	const n = 40
	deny1 := func(s *countScene) *Pending { return s.deny("user:u1") }
	fail1 := func(s *countScene) *Pending { return s.report(StepUpFailed) }
	for _, tc := range []struct {
		name   string
		first  func(s *countScene) *Pending // the recorded event below the threshold
		failed func(s *countScene) *Pending // one decision reaching the threshold
		look   func(s *countScene) bool     // another decision, answered while it is pending
		every  int                          // look after every every-th failure (0: never)
	}{
		{"velocity: denials from an IP at its threshold, none seen", deny1, func(s *countScene) *Pending { return s.deny("user:u2") }, nil, 0},
		{"velocity: denials from an IP at its threshold, every fourth seen", deny1, func(s *countScene) *Pending { return s.deny("user:u2") },
			func(s *countScene) bool {
				return len(s.e.velocity.blocked(s.reg, map[string]string{"ip": "10.0.0.1"}, 0, s.at)) > 0
			}, 4},
		{"step-up: failures of a subject at its threshold, none seen", fail1, func(s *countScene) *Pending { return s.report(StepUpFailed) }, nil, 0},
		{"step-up: failures of a subject at its threshold, every fourth seen", fail1, func(s *countScene) *Pending { return s.report(StepUpFailed) },
			func(s *countScene) bool {
				return len(s.e.velocity.heldStepUps(s.reg, "pay", "user:alice", 0, s.at)) > 0
			}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newCountScene()
			tc.first(s).Commit(ctx) // one recorded event: the next reaches the threshold (2)
			s.told(t, "one event below the threshold", false)
			seen := 0
			for i := range n {
				p := tc.failed(s)
				if tc.every > 0 && i%tc.every == 0 {
					if !tc.look(s) {
						t.Fatalf("failure %d: the pending block is not seen", i)
					}
					seen++
				}
				p.Drop(0) // its record failed
				p.Commit(ctx)
			}
			if got := s.feed.n.Swap(0); got != int64(seen) {
				t.Fatalf("%d failing decisions, %d pending blocks seen: sidecars told %d times, want %d", n, seen, got, seen)
			}
			// Counting resumes once records are written: the next recorded
			// event begins the block, and the sidecars are told.
			tc.failed(s).Commit(ctx)
			s.told(t, "the recorded event that reaches the threshold", true)
		})
	}
}
