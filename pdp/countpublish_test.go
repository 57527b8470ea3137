package pdp

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/signals"
)

// countFeed counts what the sidecars are told.
type countFeed struct{ n atomic.Int64 }

func (f *countFeed) Publish(context.Context, string) (uint64, error) {
	return uint64(f.n.Add(1)), nil
}

// countScene is an engine counting one velocity rule (threshold 2, per
// IP) and one failed step-up rule (2 failures), telling feed.
type countScene struct {
	e    *Engine
	feed *countFeed
	reg  *signals.Registry
	at   time.Time
	next uint64
}

func newCountScene() *countScene {
	s := &countScene{feed: &countFeed{}, at: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	s.e = &Engine{velocity: &Velocity{Feed: s.feed}, log: slog.New(slog.DiscardHandler)}
	s.reg = &signals.Registry{
		Velocity: []signals.VelocityRule{{Name: "ip-burst", Key: "ip", Threshold: 2, Window: time.Minute, Block: 5 * time.Minute, Reason: "risk_velocity"}},
		StepUps:  []signals.StepUpRule{{Name: "otp", Count: 2, Window: time.Minute, Block: 5 * time.Minute, Actions: []string{"pay"}, Reason: "step_up_failed"}},
	}
	return s
}

// pending is a new decision's Pending (its own owner).
func (s *countScene) pending() *Pending {
	s.next++
	return &Pending{e: s.e, owner: 1000 + s.next}
}

// deny reserves a denied decision of subject from the IP.
func (s *countScene) deny(subject string) *Pending {
	p := s.pending()
	s.e.velocity.observe(p, 0, s.reg, map[string]string{"ip": "10.0.0.1"}, subject, nil, s.at)
	return p
}

// report reserves a reported step-up outcome of alice.
func (s *countScene) report(outcome string) *Pending {
	p := s.pending()
	s.e.velocity.reportStepUp(p, 0, &s.reg.StepUps[0], "user:alice", outcome, s.at)
	return p
}

// told checks how often the sidecars were told since the last check.
func (s *countScene) told(t *testing.T, what string, want bool) {
	t.Helper()
	n := s.feed.n.Swap(0)
	if (n > 0) != want {
		t.Fatalf("%s: sidecars told %d times, want told %v", what, n, want)
	}
}

// TestCommitTellsOfWhatOthersSaw: the sidecars are told of every block
// or hold other decisions saw begin or end, when the change is held back
// behind one reserved before it and when a block seen is lost with a
// drop; the decision that began it is answered once they are told.
func TestCommitTellsOfWhatOthersSaw(t *testing.T) {
	ctx := context.Background()
	blockedIP := func(s *countScene) bool {
		return len(s.e.velocity.blocked(s.reg, map[string]string{"ip": "10.0.0.1"}, 0, s.at)) > 0
	}
	held := func(s *countScene) bool {
		return len(s.e.velocity.heldStepUps(s.reg, "pay", "user:alice", 0, s.at)) > 0
	}
	t.Run("a block begun behind a pending event, then lost with its drop", func(t *testing.T) {
		s := newCountScene()
		r1, r2 := s.deny("user:u1"), s.deny("user:u2") // r2 begins the block
		if !blockedIP(s) {
			t.Fatal("others do not see the pending block")
		}
		r2.Commit(ctx)
		s.told(t, "commit of the decision that began the block, held back", true)
		r1.Drop(0)
		r1.Commit(ctx)
		s.told(t, "drop of the event before it: the block others saw is gone", true)
		if blockedIP(s) {
			t.Fatal("still blocked after the drop")
		}
	})
	t.Run("a block begun behind a pending event, then made", func(t *testing.T) {
		s := newCountScene()
		r1, r2 := s.deny("user:u1"), s.deny("user:u2")
		r2.Commit(ctx)
		s.told(t, "commit of the decision that began the block, held back", true)
		r1.Commit(ctx)
		s.told(t, "commit that makes the block (told again)", true)
		if !blockedIP(s) {
			t.Fatal("not blocked")
		}
	})
	t.Run("a hold lifted by a success committed behind a pending failure", func(t *testing.T) {
		s := newCountScene()
		s.report(StepUpFailed).Commit(ctx)
		s.report(StepUpFailed).Commit(ctx)
		s.told(t, "the hold began", true)
		f, ok := s.report(StepUpFailed), s.report(StepUpSucceeded)
		ok.Commit(ctx)
		s.told(t, "commit of the success, held back", true)
		if held(s) {
			t.Fatal("others still see the hold after the success was committed")
		}
		f.Drop(0)
		f.Commit(ctx)
		if held(s) {
			t.Fatal("held after the failure before the success was dropped")
		}
	})
	t.Run("a success that lifts nothing tells no one", func(t *testing.T) {
		s := newCountScene()
		s.report(StepUpFailed).Commit(ctx)
		s.report(StepUpSucceeded).Commit(ctx)
		s.told(t, "success without a hold", false)
	})
}

// panicky is a dormancy source whose marks panic for one principal and
// are kept for the others.
type panicky struct {
	bad     string
	touched []string
}

func (d *panicky) States(context.Context, []dormancy.Query) ([]dormancy.State, error) {
	return nil, nil
}

func (d *panicky) TouchDecision(principal, _ dormancy.Ref, _ []string, _ time.Time) {
	if principal.ID == d.bad {
		panic("touch failed")
	}
	d.touched = append(d.touched, principal.ID)
}

// TestCommitSurvivesAPanickingMark: an activity mark that panics (with
// the trail off nothing recovers around Commit) leaves no counter change
// pending, keeps no other mark from being made, and is logged.
func TestCommitSurvivesAPanickingMark(t *testing.T) {
	s := newCountScene()
	var logs bytes.Buffer
	src := &panicky{bad: "mallory"}
	s.e.dormancy, s.e.log = src, slog.New(slog.NewTextHandler(&logs, nil))
	mark := func(p *Pending, i int, id string) {
		p.reserve(pendingItem{decision: i, kind: pendingActivity, mark: activityMark{principal: dormancy.Ref{Type: "user", ID: id}, at: s.at}})
	}
	p := s.pending() // a batch: mallory's mark, a counted denial, alice's mark
	mark(p, 0, "mallory")
	s.e.velocity.observe(p, 1, s.reg, map[string]string{"ip": "10.0.0.1"}, "user:u1", nil, s.at)
	mark(p, 2, "alice")
	func() {
		defer func() {
			if v := recover(); v != nil {
				t.Errorf("Commit panicked: %v", v)
			}
		}()
		p.Commit(context.Background())
	}()
	v := &s.e.velocity.values
	v.mu.Lock()
	tally := v.keys[velocityKey("ip-burst", "10.0.0.1")]
	pending, events := len(tally.pending), len(tally.events)
	v.mu.Unlock()
	if pending != 0 || events != 1 {
		t.Errorf("the counted denial: %d pending, %d committed events, want 0 and 1", pending, events)
	}
	if len(src.touched) != 1 || src.touched[0] != "alice" {
		t.Errorf("marks made: %v, want [alice]", src.touched)
	}
	if !strings.Contains(logs.String(), "activity mark panicked") || !strings.Contains(logs.String(), "user:mallory") {
		t.Errorf("the panic is not logged: %q", logs.String())
	}
}
