package pdp

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// windowOp is one step of a windowCounts scenario: reserve (an event, or
// a reset) for owner at t0+at, commit or drop the reservation made at
// step ref, or ask whether owner sees the key blocked at t0+at.
type windowOp struct {
	do    string // reserve, reset, commit, drop, blocked
	key   string
	owner uint64
	who   string
	at    time.Duration
	ref   int
	want  int  // reserve: the count the owner sees; blocked: the count that began the block
	yes   bool // commit: a block began or ended; blocked: blocked; reserve: reserved
	rule  *windowRule
	limit int
}

// TestWindowCounts: the sliding-window counter of the velocity and
// failed step-up rules.
func TestWindowCounts(t *testing.T) {
	distinct := windowRule{window: time.Minute, block: 5 * time.Minute, threshold: 3, distinct: true}
	pair := windowRule{window: time.Minute, block: 5 * time.Minute, threshold: 2, distinct: true}
	every := windowRule{window: 10 * time.Minute, block: 30 * time.Minute, threshold: 3}
	each := windowRule{window: time.Minute, block: 5 * time.Minute, threshold: 1}
	r := func(key, who string, at time.Duration, want int) windowOp {
		return windowOp{do: "reserve", key: key, owner: 1, who: who, at: at, want: want, yes: true}
	}
	c := func(ref int, changed bool) windowOp { return windowOp{do: "commit", key: "k", ref: ref, yes: changed} }
	rc := func(who string, at time.Duration, want int, changed bool) []windowOp {
		return []windowOp{r("k", who, at, want), {do: "commit", key: "k", ref: -1, yes: changed}}
	}
	blocked := func(owner uint64, at time.Duration, yes bool, count int) windowOp {
		return windowOp{do: "blocked", key: "k", owner: owner, at: at, yes: yes, want: count}
	}
	// outage: n decisions in a row at a key one event short of the
	// threshold, each reserving the event that reaches it (the block
	// as the decisions see it) and then dropped (its record failed);
	// look: whether another decision is answered with that pending
	// block before the drop. The drop reports (a publish) only when one
	// was: once per block seen and lost, never per failing decision.
	outage := func(n int, look func(i int) bool) []windowOp {
		var out []windowOp
		for i := range n {
			out = append(out, r("k", "", time.Duration(i)*time.Second, 3))
			seen := look(i)
			if seen {
				out = append(out, blocked(2, time.Duration(i)*time.Second, true, 3))
			}
			out = append(out, windowOp{do: "drop", key: "k", ref: -1, yes: seen}, blocked(0, time.Duration(i)*time.Second, false, 0))
		}
		return out
	}
	cat := func(ops ...any) []windowOp {
		var out []windowOp
		for _, o := range ops {
			switch o := o.(type) {
			case windowOp:
				out = append(out, o)
			case []windowOp:
				out = append(out, o...)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		rule windowRule
		ops  []windowOp
	}{
		{"distinct: one subject counts once", distinct, cat(
			rc("u1", 0, 1, false), rc("u1", time.Second, 1, false), rc("u2", 2*time.Second, 2, false),
			blocked(1, 3*time.Second, false, 0),
		)},
		{"distinct: the threshold-th subject begins the block, for block", distinct, cat(
			rc("u1", 0, 1, false), rc("u2", time.Second, 2, false), rc("u3", 2*time.Second, 3, true),
			blocked(1, 3*time.Second, true, 3), blocked(1, 5*time.Minute+time.Second, true, 3), blocked(1, 5*time.Minute+2*time.Second, false, 0),
		)},
		{"distinct: events beyond the window do not add up", distinct, cat(
			rc("u1", 0, 1, false), rc("u2", time.Second, 2, false), rc("u3", 2*time.Minute, 1, false),
			blocked(1, 2*time.Minute, false, 0),
		)},
		{"every: each failure counts; a block that runs on is not begun again", every, cat(
			rc("", 0, 1, false), rc("", time.Minute, 2, false), rc("", 2*time.Minute, 3, true),
			rc("", 3*time.Minute, 1, false), rc("", 4*time.Minute, 2, false), rc("", 5*time.Minute, 3, false),
			blocked(1, 6*time.Minute, true, 3),
		)},
		{"every: a committed reset ends the block and forgets the events", every, cat(
			rc("", 0, 1, false), rc("", 0, 2, false), rc("", 0, 3, true),
			windowOp{do: "reset", key: "k", owner: 1, at: time.Minute, yes: true}, c(-1, true),
			blocked(1, time.Minute, false, 0), rc("", 2*time.Minute, 1, false),
		)},
		{"every: a reset of a key never counted reserves nothing", every, cat(
			windowOp{do: "reset", key: "k", owner: 1, at: time.Minute, yes: false},
		)},
		{"pending events count for everyone; the block begins at its commit", every, cat(
			r("k", "", 0, 1), r("k", "", 0, 2), r("k", "", 0, 3),
			blocked(2, time.Second, true, 3), // another owner sees the pending block
			c(0, false), c(1, false), c(2, true),
			blocked(2, time.Second, true, 3),
		)},
		{"commits in another order than the reservations: the count is the same", every, cat(
			r("k", "", 0, 1), r("k", "", time.Second, 2), r("k", "", 2*time.Second, 3),
			c(2, false), c(0, false), c(1, true),
			blocked(1, 3*time.Second, true, 3),
		)},
		{"a success committed before the failures reserved ahead of it is made after them", every, cat(
			r("k", "", 0, 1), r("k", "", 0, 2), r("k", "", 0, 3),
			windowOp{do: "reset", key: "k", owner: 7, at: time.Minute, yes: true},
			c(3, true), // waits for the failures reserved before it, but others see the hold lifted now
			c(0, false), c(1, false), c(2, true),
			blocked(1, time.Minute, false, 0), blocked(0, 2*time.Minute, false, 0),
		)},
		{"a drop lets the commits waiting behind it be made", every, cat(
			r("k", "", 0, 1), r("k", "", 0, 2), r("k", "", 0, 3), r("k", "", 0, 1), // the 4th sees the pending block begun
			c(1, false), c(2, false), c(3, false),
			blocked(2, time.Second, true, 3), // pending events count for everyone
			windowOp{do: "drop", key: "k", ref: 0, yes: true},
			blocked(2, time.Second, true, 3),
		)},
		{"a dropped event is forgotten: counting resumes without it", every, cat(
			r("k", "", 0, 1), r("k", "", 0, 2), r("k", "", 0, 3),
			blocked(2, time.Second, true, 3),                  // the pending block others see …
			windowOp{do: "drop", key: "k", ref: 0, yes: true}, // … is gone with the first drop
			windowOp{do: "drop", key: "k", ref: 1}, windowOp{do: "drop", key: "k", ref: 2},
			blocked(1, time.Second, false, 0),
			rc("", time.Second, 1, false),
		)},
		{"a block others saw, gone with the drop of the event before it: the drop reports it", pair, cat(
			windowOp{do: "reserve", key: "k", owner: 1, who: "u1", at: 0, want: 1, yes: true},
			windowOp{do: "reserve", key: "k", owner: 2, who: "u2", at: time.Second, want: 2, yes: true}, // begins the block
			blocked(3, 2*time.Second, true, 2),
			c(1, false), // held back behind the first; what others see does not change (its Pending tells the sidecars: it began the block)
			windowOp{do: "drop", key: "k", ref: 0, yes: true},
			blocked(3, 2*time.Second, false, 0),
		)},
		{"a success committed behind a pending event lifts the hold for everyone at its commit", pair, cat(
			rc("u1", 0, 1, false), rc("u2", time.Second, 2, true), // the hold
			windowOp{do: "reserve", key: "k", owner: 1, who: "u3", at: 2 * time.Second, want: 1, yes: true},
			windowOp{do: "reset", key: "k", owner: 2, at: 3 * time.Second, yes: true},
			blocked(3, 3*time.Second, true, 2),
			c(-1, true), // held back behind u3's event, and yet the hold is lifted for others now
			blocked(3, 3*time.Second, false, 0),
			c(4, true), // the reset is made now: the committed hold ends (told again: harmless)
			blocked(3, 3*time.Second, false, 0),
		)},
		{"a success committed behind a pending event that is then dropped", pair, cat(
			rc("u1", 0, 1, false), rc("u2", time.Second, 2, true),
			windowOp{do: "reserve", key: "k", owner: 1, who: "u3", at: 2 * time.Second, want: 1, yes: true},
			windowOp{do: "reset", key: "k", owner: 2, at: 3 * time.Second, yes: true},
			c(-1, true),
			windowOp{do: "drop", key: "k", ref: 4, yes: true}, // lets the reset be made: the committed hold ends
			blocked(0, 3*time.Second, false, 0),
		)},
		{"a pending reset lifts the hold for its own owner only, until committed", every, cat(
			rc("", 0, 1, false), rc("", 0, 2, false), rc("", 0, 3, true),
			windowOp{do: "reset", key: "k", owner: 7, at: time.Minute, yes: true},
			blocked(7, time.Minute, false, 0), blocked(1, time.Minute, true, 3), blocked(0, time.Minute, true, 3),
			c(-1, true), blocked(1, time.Minute, false, 0),
		)},
		{"a dropped reset leaves the hold", every, cat(
			rc("", 0, 1, false), rc("", 0, 2, false), rc("", 0, 3, true),
			windowOp{do: "reset", key: "k", owner: 7, at: time.Minute, yes: true}, windowOp{do: "drop", key: "k", ref: -1},
			blocked(7, time.Minute, true, 3),
		)},
		{"a key at its threshold during an outage: 50 failing decisions, none seen, report nothing", every, cat(
			rc("", 0, 1, false), rc("", 0, 2, false),
			outage(50, func(int) bool { return false }),
		)},
		{"a key at its threshold during an outage: every fifth pending block seen, each reported once", every, cat(
			rc("", 0, 1, false), rc("", 0, 2, false),
			outage(50, func(i int) bool { return i%5 == 0 }),
		)},
		{"a key at its threshold during an outage: a block seen, changed by one drop, lost with the next: both told", every, cat(
			rc("", 0, 1, false), rc("", 0, 2, false),
			r("k", "", time.Second, 3), r("k", "", 2*time.Second, 1), // the second sees the block the first began
			blocked(2, 2*time.Second, true, 3),
			windowOp{do: "drop", key: "k", ref: 4, yes: true}, // the block seen now ends later (begun by the second): told …
			windowOp{do: "drop", key: "k", ref: 5, yes: true}, // … and its loss too: the denial made with the first may reach a sidecar after the first notice
			blocked(2, 2*time.Second, false, 0),
		)},
		{"a pending block seen, still pending after a commit reported, is told when lost", each, cat(
			r("k", "", 0, 1), r("k", "", time.Minute, 1), // A blocks until 5m, B until 6m
			blocked(2, time.Minute, true, 1), // D2 is denied with B's block (until 6m) …
			c(0, true),                       // … A's commit begins the committed block (until 5m): told, but D2's denial may arrive after
			windowOp{do: "drop", key: "k", ref: 1, yes: true}, // B is lost: the view falls back to 5m, below what D2 saw
			blocked(2, 5*time.Minute+30*time.Second, false, 0),
		)},
		{"a seen block, still pending after a commit reported, is not told twice once committed", each, cat(
			r("k", "", 0, 1), r("k", "", time.Minute, 1),
			blocked(2, time.Minute, true, 1),
			c(0, true), c(1, false), // B committed: the committed block reaches what D2 saw
			blocked(2, 5*time.Minute+30*time.Second, true, 1),
		)},
		{"a pending block extending a committed one is told when lost only if seen", every, cat(
			rc("", 0, 1, false), rc("", 0, 2, false), rc("", 0, 3, true), // blocked until 30m
			rc("", time.Minute, 1, false), rc("", time.Minute, 2, false),
			r("k", "", 2*time.Minute, 3), // would extend it to 32m
			windowOp{do: "drop", key: "k", ref: -1, yes: false},
			r("k", "", 2*time.Minute, 3),
			blocked(2, 2*time.Minute, true, 3),
			windowOp{do: "drop", key: "k", ref: -1, yes: true},
			blocked(2, 31*time.Minute, false, 0),
		)},
		{"a committed block is not a pending one: seeing it makes no drop report", every, cat(
			rc("", 0, 1, false), rc("", 0, 2, false), rc("", 0, 3, true),
			blocked(2, time.Second, true, 3),
			r("k", "", time.Second, 1),
			windowOp{do: "drop", key: "k", ref: -1, yes: false},
		)},
		{"bounded: a new key beyond the bound is not counted", every, cat(
			windowOp{do: "reserve", key: "a", owner: 1, at: 0, want: 1, yes: true, limit: 2},
			windowOp{do: "reserve", key: "b", owner: 1, at: 0, want: 1, yes: true, limit: 2},
			windowOp{do: "reserve", key: "c", owner: 1, at: 0, want: 0, yes: false, limit: 2},
			windowOp{do: "reserve", key: "a", owner: 1, at: time.Minute, want: 2, yes: true, limit: 2},
		)},
		{"bounded: keys idle past their window make room; pending and blocked ones do not", every, cat(
			windowOp{do: "reserve", key: "pending", owner: 1, at: 0, want: 1, yes: true, limit: 3},
			windowOp{do: "reserve", key: "idle", owner: 1, at: 0, want: 1, yes: true, limit: 3}, windowOp{do: "commit", key: "idle", ref: -1},
			windowOp{do: "reserve", key: "held", owner: 1, at: 0, want: 1, yes: true, limit: 3, rule: &windowRule{window: time.Minute, block: time.Hour, threshold: 1}},
			windowOp{do: "commit", key: "held", ref: -1, yes: true},
			windowOp{do: "reserve", key: "new", owner: 1, at: 11 * time.Minute, want: 1, yes: true, limit: 3},
			windowOp{do: "reserve", key: "newer", owner: 1, at: 11 * time.Minute, want: 0, yes: false, limit: 3},
		)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w windowCounts[string]
			t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
			ids := make([]uint64, len(tc.ops))
			last := -1
			for i, op := range tc.ops {
				rule := tc.rule
				if op.rule != nil {
					rule = *op.rule
				}
				limit := op.limit
				if limit == 0 {
					limit = 100
				}
				ref := op.ref
				if ref < 0 {
					ref = last
				}
				switch op.do {
				case "reserve", "reset":
					n, id := w.reserve(op.key, windowChange{owner: op.owner, rule: rule, ev: windowEvent{who: op.who, at: t0.Add(op.at)}, reset: op.do == "reset"}, limit)
					if n != op.want || (id != 0) != op.yes {
						t.Fatalf("step %d: %s %s: count %d reserved %v, want %d %v", i, op.do, op.key, n, id != 0, op.want, op.yes)
					}
					ids[i], last = id, i
				case "commit":
					if got := w.commit(op.key, ids[ref]); got != op.yes {
						t.Fatalf("step %d: commit of step %d: changed %v, want %v", i, ref, got, op.yes)
					}
				case "drop":
					if got := w.drop(op.key, ids[ref]); got != op.yes {
						t.Fatalf("step %d: drop of step %d: changed %v, want %v", i, ref, got, op.yes)
					}
				case "blocked":
					s, ok := w.blocked(op.key, op.owner, t0.Add(op.at))
					if ok != op.yes || (ok && s.count != op.want) {
						t.Fatalf("step %d: owner %d sees blocked %v (count %d), want %v (%d)", i, op.owner, ok, s.count, op.yes, op.want)
					}
				}
			}
		})
	}
}

// TestWindowCountsDropped: a key not counted for want of room is counted
// in dropped.
func TestWindowCountsDropped(t *testing.T) {
	var w windowCounts[string]
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	rule := windowRule{window: time.Minute, block: time.Minute, threshold: 5}
	for i := range 5 {
		w.reserve(fmt.Sprint(i), windowChange{rule: rule, ev: windowEvent{at: at}}, 2)
	}
	if keys, dropped := w.stats(); keys != 2 || dropped != 3 {
		t.Fatalf("keys %d dropped %d, want 2 and 3", keys, dropped)
	}
}

// TestWindowCountsConcurrent: concurrent decisions, each reserving then
// committing (or dropping) its event, lose no update: the block begins
// in the committed counts, by the commit or drop that made the
// threshold-th committed event, and dropped events never count. What
// they report is bounded: a commit or drop reports a change (a publish
// that waits on the sidecars) when the committed block begins, which
// happens once, or when a drop changes a pending block a decision was
// answered with (seen) since the last report. The viewers count, under
// the test's mutex, the decisions answered blocked while the committed
// counts did not block yet (the only ones that can see a block pending
// changes alone make: a pending event during the committed block ends
// where it does); each report after the first needs one of them.
func TestWindowCountsConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name string
		look bool // each decision first asks whether the key is blocked
	}{
		{"no decision looks: one report, the committed block", false},
		{"each decision looks first: at most one more report per pending block seen", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w windowCounts[string]
			at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
			rule := windowRule{window: time.Hour, block: time.Hour, threshold: 100}
			var (
				wg                        sync.WaitGroup
				mu                        sync.Mutex
				began, pendingSeen, drops int
			)
			committedBlocks := func() bool {
				w.mu.Lock()
				defer w.mu.Unlock()
				tally := w.keys["k"]
				return tally != nil && tally.blocks(at)
			}
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 50 {
						if tc.look {
							// The committed counts only come to block (no
							// reset): read before, a block not committed
							// then may be pending-only.
							before := committedBlocks()
							if _, ok := w.blocked("k", uint64(g+1), at); ok && !before {
								mu.Lock()
								pendingSeen++
								mu.Unlock()
							}
						}
						_, id := w.reserve("k", windowChange{owner: uint64(g + 1), rule: rule, ev: windowEvent{at: at}}, 10)
						var changed bool
						if i%2 == 1 { // half the records fail
							// A drop makes the committed changes it held
							// back, so it may be the one that begins the
							// block.
							changed = w.drop("k", id)
						} else {
							changed = w.commit("k", id)
						}
						mu.Lock()
						if i%2 == 1 {
							drops++
						}
						if changed {
							began++
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			// 8×25 committed events: the block begins at the 100th, and
			// the next 100 begin none (it runs on); 0 stay in the window.
			if bound := 1 + min(pendingSeen, drops); began < 1 || began > bound {
				t.Fatalf("a change was reported %d times, want 1 to %d (the committed block, and one per pending block seen: %d, of %d drops)", began, bound, pendingSeen, drops)
			}
			t.Logf("reported %d times; %d decisions answered with a pending block", began, pendingSeen)
			s, ok := w.blocked("k", 0, at)
			if !ok || s.count != 100 || len(s.events) != 0 {
				t.Fatalf("blocked %v count %d events %d, want a block of 100 and 0 events", ok, s.count, len(s.events))
			}
			if len(w.keys["k"].pending) != 0 {
				t.Fatalf("%d changes still pending", len(w.keys["k"].pending))
			}
		})
	}
}
