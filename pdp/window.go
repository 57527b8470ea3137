package pdp

import (
	"slices"
	"sync"
	"time"
)

// windowRule is what a sliding-window count is kept by: the events of
// one key within window count, and at threshold of them the key is
// blocked for block. distinct counts one event per who (a velocity rule's
// distinct subjects); otherwise every event counts (failed step-ups).
type windowRule struct {
	window, block time.Duration
	threshold     int
	distinct      bool
}

// windowEvent is one counted event.
type windowEvent struct {
	who string
	at  time.Time
}

// windowState is what the count of one key is at a moment: the events
// within the window (oldest first, fewer than the threshold: the one that
// reaches it begins a block and clears them) and the last block.
type windowState struct {
	events                  []windowEvent
	blockedAt, blockedUntil time.Time
	count                   int // the events that began the block
}

// blocks reports whether the state blocks its key at at.
func (s *windowState) blocks(at time.Time) bool { return s.blockedUntil.After(at) }

// windowChange is one decision's change to a key's count: an event to
// count, or (reset) forgetting the events and ending a block (a
// successful step-up).
type windowChange struct {
	id    uint64 // the reservation
	owner uint64 // the set of decisions it belongs to (one batch)
	rule  windowRule
	ev    windowEvent
	reset bool
	done  bool // committed, waiting for the changes reserved before it
}

// apply makes ch on s and returns the events counted after it (the count
// that began a block when one began) and whether a block began or ended.
func (s *windowState) apply(ch *windowChange) (count int, changed bool) {
	at := ch.ev.at
	if ch.reset {
		changed = s.blocks(at)
		*s = windowState{events: s.events[:0]}
		return 0, changed
	}
	from := at.Add(-ch.rule.window)
	s.events = slices.DeleteFunc(s.events, func(e windowEvent) bool {
		return e.at.Before(from) || (ch.rule.distinct && e.who == ch.ev.who)
	})
	i, _ := slices.BinarySearchFunc(s.events, at, func(e windowEvent, t time.Time) int { return e.at.Compare(t) })
	s.events = slices.Insert(s.events, i, ch.ev)
	count = len(s.events)
	if count >= ch.rule.threshold {
		changed = !s.blocks(at)
		s.blockedAt, s.blockedUntil, s.count = at, at.Add(ch.rule.block), count
		s.events = s.events[:0]
	}
	return count, changed
}

// windowTally is one key's count: the committed state (what durable
// records explain) and the changes reserved by decisions whose records
// are not yet durable, in the order they were reserved.
type windowTally struct {
	windowState
	pending []windowChange
	window  time.Duration // of the rule that counted last: when the tally is idle
	// seenUntil: the latest end of a block that only pending changes
	// make and a decision was answered (blocked) with; zero when none.
	// The sidecars may cache denials made with it, and such a denial may
	// reach them after any notice sent while it is pending, so it is
	// kept until nothing is pending or the committed block reaches it:
	// while kept, a commit or drop that changes the view (in particular
	// makes it end before seenUntil) reports. Losing a pending block no
	// decision saw is not reported: a key at its threshold while records
	// fail reports nothing per failing decision.
	seenUntil time.Time
}

// idle reports whether the tally holds nothing worth keeping at at.
func (t *windowTally) idle(at time.Time) bool {
	if len(t.pending) > 0 || t.blocks(at) {
		return false
	}
	return len(t.events) == 0 || at.Sub(t.events[len(t.events)-1].at) > t.window
}

// view is the state a decision of owner sees: the committed state with
// every pending change that makes it stricter (an event) and the owner's
// own pending resets. Another decision's reset counts only once it is
// committed: a hold is not lifted by a report whose record may yet fail.
// The events are the tally's own unless mutable or changes are pending.
func (t *windowTally) view(owner uint64, mutable bool) windowState {
	if len(t.pending) == 0 && !mutable {
		return t.windowState
	}
	s := t.windowState
	s.events = slices.Clone(t.events)
	for i := range t.pending {
		ch := &t.pending[i]
		if ch.reset && !ch.done && (owner == 0 || ch.owner != owner) {
			continue
		}
		s.apply(ch)
	}
	return s
}

// windowCounts counts events per key in sliding windows, with reserve,
// then commit: a decision reserves its change (and is answered from the
// count including it); the change is made once the decision's record is
// durable (commit), or forgotten when the record failed (drop). Bounded:
// at most max keys (when full, idle keys are evicted; if none is, a new
// key is not counted and dropped grows). Safe for concurrent use.
type windowCounts[K comparable] struct {
	mu      sync.Mutex
	keys    map[K]*windowTally
	lastID  uint64
	dropped uint64
}

// reserve reserves ch for key k (of at most max keys) and returns the
// events its owner now sees counted (with ch) and the reservation id (0:
// nothing reserved, a reset of an uncounted key or no room).
func (w *windowCounts[K]) reserve(k K, ch windowChange, max int) (count int, id uint64) {
	count, id, _ = w.reserveBegins(k, ch, max)
	return count, id
}

// reserveBegins is reserve, also reporting whether ch begins a block as
// the decisions see the counts (a block they see that its commit has not
// made yet).
func (w *windowCounts[K]) reserveBegins(k K, ch windowChange, max int) (count int, id uint64, begins bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.keys[k]
	if t == nil {
		if ch.reset {
			return 0, 0, false
		}
		if !w.room(ch.ev.at, max) {
			w.dropped++
			return 0, 0, false
		}
		if w.keys == nil {
			w.keys = map[K]*windowTally{}
		}
		t = &windowTally{}
		w.keys[k] = t
	}
	if !ch.reset {
		t.window = ch.rule.window
	}
	w.lastID++
	ch.id = w.lastID
	switch {
	case ch.reset:
	case len(t.pending) == 0:
		count = t.countWith(&ch)
		begins = count >= ch.rule.threshold && !t.blocks(ch.ev.at)
	default:
		s := t.view(ch.owner, true)
		count, begins = s.apply(&ch)
	}
	t.pending = append(t.pending, ch)
	return count, ch.id, begins
}

// countWith is the count of the committed state with ch made: apply's
// count, without changing anything.
func (s *windowState) countWith(ch *windowChange) int {
	from := ch.ev.at.Add(-ch.rule.window)
	n := 1
	for _, e := range s.events {
		if !e.at.Before(from) && (!ch.rule.distinct || e.who != ch.ev.who) {
			n++
		}
	}
	return n
}

// room makes room for one more key (w.mu held).
func (w *windowCounts[K]) room(at time.Time, max int) bool {
	if len(w.keys) < max {
		return true
	}
	for k, t := range w.keys {
		if t.idle(at) {
			delete(w.keys, k)
		}
	}
	return len(w.keys) < max
}

// find returns key k's tally and the index of its reservation id (w.mu
// held).
func (w *windowCounts[K]) find(k K, id uint64) (*windowTally, int) {
	t := w.keys[k]
	if t == nil {
		return nil, -1
	}
	return t, slices.IndexFunc(t.pending, func(ch windowChange) bool { return ch.id == id })
}

// settle makes the committed changes at the head of t's reservations, in
// the order they were reserved (a success committed before the failures
// reserved ahead of it must not be undone by them), forgets the tally of
// key k when nothing is left of it, and reports whether a block began or
// ended (w.mu held).
func (w *windowCounts[K]) settle(k K, t *windowTally) (changed bool) {
	n := 0
	for n < len(t.pending) && t.pending[n].done {
		_, c := t.apply(&t.pending[n])
		changed = changed || c
		n++
	}
	t.pending = slices.Delete(t.pending, 0, n)
	if len(t.pending) == 0 && len(t.events) == 0 && t.blockedUntil.IsZero() {
		delete(w.keys, k)
	}
	return changed
}

// viewUntil is until when the decisions of other owners (none of the
// pending resets' own) see t's key blocked: zero when they do not (w.mu
// held).
func (t *windowTally) viewUntil() time.Time { return t.view(0, false).blockedUntil }

// reported notes what a commit or drop reports, given the view before
// it: a change of the committed block, or a change of the view, when
// the change is a reset's (it lifts the hold for everyone) or when a
// decision was answered with a pending block (seenUntil). A report that
// makes the view end before seenUntil lowers it to the view (the
// sidecars were told of that end); seenUntil is forgotten once nothing
// is pending (no block is made by pending changes alone) or the
// committed block reaches it, and not at an earlier report: a denial
// answered with the pending block may reach a sidecar after that
// report's notice (w.mu held).
func (t *windowTally) reported(changed, reset bool, before time.Time) bool {
	if !t.watched(reset) {
		return changed
	}
	after := t.viewUntil()
	if !after.Equal(before) && (reset || !t.seenUntil.IsZero()) {
		changed = true
	}
	if changed && after.Before(t.seenUntil) {
		t.seenUntil = after
	}
	if len(t.pending) == 0 || !t.blockedUntil.Before(t.seenUntil) {
		t.seenUntil = time.Time{}
	}
	return changed
}

// watched reports whether a commit or drop (of a reset, when reset) must
// compare the view before and after it (reported): only when the view
// others were answered with can change unseen. Otherwise neither view is
// built (each clones the key's events; a counted decision's commit is on
// its answer's path) (w.mu held).
func (t *windowTally) watched(reset bool) bool { return reset || !t.seenUntil.IsZero() }

// beforeView is the view reported compares against, when it will (w.mu
// held).
func (t *windowTally) beforeView(reset bool) time.Time {
	if !t.watched(reset) {
		return time.Time{}
	}
	return t.viewUntil()
}

// commit makes reservation id of key k, once every change reserved
// before it is made or dropped, and reports whether a block began or
// ended with the changes made now (its own, or later ones it was
// holding back), or as the other decisions see the counts: a committed
// reset held back behind changes reserved before it lifts the hold for
// everyone at once (view), though it is made later. An event held back
// changes nothing the others see (they counted it already); when it
// began a block they saw, its Pending says so (blocking).
func (w *windowCounts[K]) commit(k K, id uint64) (changed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, i := w.find(k, id)
	if i < 0 {
		return false
	}
	reset := t.pending[i].reset
	before := t.beforeView(reset)
	t.pending[i].done = true
	return t.reported(w.settle(k, t), reset, before)
}

// drop forgets reservation id of key k and reports whether a block began
// or ended with the committed changes it was holding back, or as the
// other decisions see the counts when a decision was answered with a
// block only pending changes made (seenUntil): that block (the sidecars may
// have cached denials for) may be gone or changed with the event
// dropped, even when it was not this event that began it. A pending
// block no decision was answered with is lost silently: while records
// fail, a key at its threshold reports once per block seen and lost
// (and per later change of the view while such a block is pending), not
// once per failing decision.
func (w *windowCounts[K]) drop(k K, id uint64) (changed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, i := w.find(k, id)
	if i < 0 {
		return false
	}
	before := t.beforeView(false)
	t.pending = slices.Delete(t.pending, i, i+1)
	return t.reported(w.settle(k, t), false, before)
}

// blocked returns the state owner sees for key k when it blocks k at at.
// A block that pending changes alone make (another end than the
// committed one) is noted as seen: its decision is answered with it.
func (w *windowCounts[K]) blocked(k K, owner uint64, at time.Time) (windowState, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.keys[k]
	if t == nil {
		return windowState{}, false
	}
	s := t.view(owner, false)
	ok := s.blocks(at)
	if ok && !s.blockedUntil.Equal(t.blockedUntil) && s.blockedUntil.After(t.seenUntil) {
		t.seenUntil = s.blockedUntil
	}
	return s, ok
}

// stats returns the keys counted and the events not counted for want of
// room.
func (w *windowCounts[K]) stats() (keys int, dropped uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.keys), w.dropped
}
