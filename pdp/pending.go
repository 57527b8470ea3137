package pdp

import (
	"context"
	"slices"
	"sync/atomic"
)

// Pending is what a decision, or the decisions of one batch, would change
// in the counters of the velocity and failed step-up rules — the denial a
// velocity rule counts, a reported failed step-up, a reported success
// that lifts a hold — and in the activity the dormancy guard reads (an
// allowed decision marks its principal, its data subject and the
// delegations it relied on as active). The decisions were answered from
// the counters with it; it is made by Commit once their records are
// durable, and forgotten (Drop) for a decision whose record failed, so
// that neither the counters nor the activity hold a change no record
// explains.
//
// Until it is committed or dropped, a pending change already counts for
// other decisions when it makes them stricter (a denial or a failure
// counts towards a threshold, a block or hold it begins applies), and
// does not when it relaxes them (a success lifts a hold for the other
// decisions of its own batch only, and for everyone once committed).
// Concurrent decisions are therefore counted as they were when changes
// were made at once: the threshold is reached by the same decision, and
// no hold is lifted by a report whose record may yet fail. An activity
// mark only ever relaxes (it keeps an identity or a delegation from
// being dormant), so it counts for no one until it is committed: not for
// concurrent decisions, nor for the later items of its own batch (which
// read the activity before any item was decided).
//
// A Pending must be committed (Commit after the Drops), else its changes
// stay pending. Safe for use by one goroutine; the nil Pending holds
// nothing.
type Pending struct {
	e     *Engine
	owner uint64
	items []pendingItem
	buf   [2]pendingItem
	// changed: a block a decision was answered with (and the sidecars
	// may have cached) is gone or changed with a dropped change, or its
	// drop let committed changes begin or end one: Commit tells the
	// sidecars. A dropped change that began a block no decision was
	// answered with changes nothing they cached: not told (while records
	// fail, a key at its threshold would be told of at every failure).
	changed bool
}

// pendingKind is what a reserved change changes.
type pendingKind uint8

const (
	pendingVelocity pendingKind = iota // a velocity value's count
	pendingStepUp                      // a failed step-up subject's count
	pendingActivity                    // the activity of a decision's identities
)

// pendingItem is one reserved change: of a velocity value, of a failed
// step-up subject, or an activity mark.
type pendingItem struct {
	decision int // its decision's index in the batch
	kind     pendingKind
	id       uint64 // the counter's reservation (not for a mark)
	value    string
	subject  stepUpKey
	mark     activityMark
	reset    bool // a success that lifts a hold for the later decisions of the batch
	blocking bool // it began a block or hold as the decisions saw the counts
}

// pendingOwners numbers the Pendings of the process.
var pendingOwners atomic.Uint64

func (p *Pending) ownerID() uint64 {
	if p == nil {
		return 0
	}
	return p.owner
}

// Drop forgets the changes of decision i (its index in the batch; 0 for
// a single decision): its record could not be written.
func (p *Pending) Drop(i int) {
	if p == nil {
		return
	}
	v := p.e.velocity
	p.items = slices.DeleteFunc(p.items, func(it pendingItem) bool {
		if it.decision != i {
			return false
		}
		var c bool
		switch it.kind {
		case pendingStepUp:
			c = v.subjects.drop(it.subject, it.id)
		case pendingVelocity:
			c = v.values.drop(it.value, it.id)
		}
		p.changed = p.changed || c
		return true
	})
}

// dropAll forgets every change of p.
func (p *Pending) dropAll() {
	for len(p.items) > 0 {
		p.Drop(p.items[0].decision)
	}
}

// Resets reports whether decision i reserved a success that lifts a hold:
// the later decisions of its batch were answered with the hold lifted, so
// when i's record fails theirs must not be written either.
func (p *Pending) Resets(i int) bool {
	if p == nil {
		return false
	}
	return slices.ContainsFunc(p.items, func(it pendingItem) bool { return it.decision == i && it.reset })
}

// Commit makes the changes not dropped: first every counter's (so that
// nothing after them can leave a reservation pending for good), then the
// activity marks (in the dormancy source, or the consent ledger; a mark
// that panics is logged and does not keep the others from being made).
// When a block or hold began or ended with them, or began as the
// decisions saw the counts (a change held back behind one reserved
// before it is made later, but the decision that began the block must
// not be answered before the sidecars are told), it tells the sidecars
// (the change feed) and returns once they have been. Telling them
// twice of one change (now, and when it is made) is harmless.
func (p *Pending) Commit(ctx context.Context) {
	if p == nil {
		return
	}
	v, changed := p.e.velocity, p.changed
	items := p.items
	p.items, p.changed = nil, false
	marks := false
	for i := range items {
		it := &items[i]
		switch it.kind {
		case pendingStepUp:
			changed = v.subjects.commit(it.subject, it.id) || it.blocking || changed
		case pendingVelocity:
			changed = v.values.commit(it.value, it.id) || it.blocking || changed
		case pendingActivity:
			marks = true
		}
	}
	if marks {
		for i := range items {
			if items[i].kind == pendingActivity {
				p.e.markGuarded(ctx, &items[i].mark)
			}
		}
	}
	if changed {
		p.e.publishChange(ctx)
	}
}

// pendingFor returns the Pending a job reserves a counter's change into,
// made at its first change, numbered at its first counter's change.
func (e *Engine) pendingFor(j *job) *Pending {
	p := e.pendingOf(j)
	if p.owner == 0 {
		p.owner = pendingOwners.Add(1)
	}
	return p
}

// pendingOf returns the Pending a job reserves into, made at its first
// change: the job's spare when it has one (a single decision's, allocated
// with the job), else a new one. An activity mark needs no number (it is
// in no counter), so a decision that only marks activity costs no
// contended increment.
func (e *Engine) pendingOf(j *job) *Pending {
	if *j.pending == nil {
		p := j.spare
		if p == nil {
			p = &Pending{}
		}
		p.e = e
		p.items = p.buf[:0]
		*j.pending = p
	}
	return *j.pending
}

// reserve adds a reserved change of decision i (a counter's change only
// when the counter reserved it).
func (p *Pending) reserve(it pendingItem) {
	if it.id != 0 || it.kind == pendingActivity {
		p.items = append(p.items, it)
	}
}
