package pdp

import (
	"context"
	"slices"
	"sync/atomic"
)

// Pending is what a decision, or the decisions of one batch, would change
// in the counters of the velocity and failed step-up rules: the denial a
// velocity rule counts, a reported failed step-up, a reported success
// that lifts a hold. The decisions were answered from the counters with
// it; it is made by Commit once their records are durable, and forgotten
// (Drop) for a decision whose record failed, so that the counters never
// hold a change no record explains.
//
// Until it is committed or dropped, a pending change already counts for
// other decisions when it makes them stricter (a denial or a failure
// counts towards a threshold, a block or hold it begins applies), and
// does not when it relaxes them (a success lifts a hold for the other
// decisions of its own batch only, and for everyone once committed).
// Concurrent decisions are therefore counted as they were when changes
// were made at once: the threshold is reached by the same decision, and
// no hold is lifted by a report whose record may yet fail.
//
// A Pending must be committed (Commit after the Drops), else its changes
// stay pending. Safe for use by one goroutine; the nil Pending holds
// nothing.
type Pending struct {
	e     *Engine
	owner uint64
	items []pendingItem
	buf   [2]pendingItem
	// changed: a dropped change had begun a block that other decisions
	// (and the sidecars caching them) saw, or its drop let committed
	// changes be made: Commit tells the sidecars.
	changed bool
}

// pendingItem is one reserved change: of a velocity value or of a
// failed step-up subject.
type pendingItem struct {
	decision int // its decision's index in the batch
	id       uint64
	stepUp   bool
	value    string
	subject  stepUpKey
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
		if it.stepUp {
			c = v.subjects.drop(it.subject, it.id)
		} else {
			c = v.values.drop(it.value, it.id)
		}
		p.changed = p.changed || c || it.blocking
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

// Commit makes the changes not dropped and, when a block or hold began
// or ended with them, tells the sidecars (the change feed) and returns
// once they have been.
func (p *Pending) Commit(ctx context.Context) {
	if p == nil {
		return
	}
	v, changed := p.e.velocity, p.changed
	for _, it := range p.items {
		if it.stepUp {
			changed = v.subjects.commit(it.subject, it.id) || changed
		} else {
			changed = v.values.commit(it.value, it.id) || changed
		}
	}
	p.items, p.changed = nil, false
	if changed {
		p.e.publishChange(ctx)
	}
}

// pendingFor returns the Pending a job reserves into, made at its first
// change.
func (e *Engine) pendingFor(j *job) *Pending {
	if *j.pending == nil {
		p := &Pending{e: e, owner: pendingOwners.Add(1)}
		p.items = p.buf[:0]
		*j.pending = p
	}
	return *j.pending
}

// reserve adds a reserved change of decision i.
func (p *Pending) reserve(it pendingItem) {
	if it.id != 0 {
		p.items = append(p.items, it)
	}
}
