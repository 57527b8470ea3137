package consent

import (
	"context"
	"time"
)

// CheckBatch is Check for every query, in order, against one state of the
// index: one freshness check for the whole batch (with PostgreSQL, one
// round trip for the head, and a catch-up when another replica wrote) and
// at most one read of the activity of the subjects that look dormant,
// whatever the number of queries.
func (l *Ledger) CheckBatch(ctx context.Context, qs []CheckQuery) ([]CheckResult, error) {
	return l.checkAll(ctx, qs, 0)
}

// checkAll is CheckBatch on an index that includes minPosition.
func (l *Ledger) checkAll(ctx context.Context, qs []CheckQuery, minPosition int64) ([]CheckResult, error) {
	reg := l.registry()
	if reg == nil {
		return nil, ErrNoRegistry
	}
	if err := l.fresh(ctx, minPosition); err != nil {
		return nil, err
	}
	now := l.clock()
	qs = append([]CheckQuery(nil), qs...) // Now is filled in below
	evs := make([][]Event, len(qs))
	l.mu.RLock()
	for i, q := range qs {
		evs[i] = l.idx[indexKey{q.Subject, q.Purpose}]
	}
	head := l.head.Load()
	l.mu.RUnlock()
	last := make([]time.Time, len(qs))
	var (
		dormant []Ref
		seen    map[Ref]bool // made for the first dormant-looking subject
	)
	for i, q := range qs {
		if q.Now.IsZero() {
			qs[i].Now = now
		}
		var ok bool
		last[i], ok = l.lastActiveHere(qs[i].Subject, reg, qs[i].Now, len(evs[i]) > 0)
		if !ok && !seen[q.Subject] {
			if seen == nil {
				seen = map[Ref]bool{}
			}
			seen[q.Subject] = true
			dormant = append(dormant, q.Subject)
		}
	}
	if len(dormant) > 0 {
		stored := l.storedActivity(ctx, dormant)
		for i, q := range qs {
			if at, ok := stored[q.Subject]; ok && at.After(last[i]) {
				last[i] = at
			}
		}
	}
	out := make([]CheckResult, len(qs))
	guardian := l.guardian(ctx)
	for i, q := range qs {
		// Decide is pure and never changes events (it sorts a copy when it
		// must): the index's slice is passed as it is.
		out[i] = Decide(reg, q, evs[i], last[i], guardian)
		out[i].Position = head
	}
	return out, nil
}

// lastActiveHere is the subject's last activity as this process knows
// it, and false when that is not enough: with a shared store a subject
// with events who looks dormant must be read from the store (another
// replica may have seen them since this one loaded).
func (l *Ledger) lastActiveHere(subject Ref, reg *Registry, now time.Time, hasEvents bool) (time.Time, bool) {
	l.amu.RLock()
	at := l.active[subject]
	l.amu.RUnlock()
	// Zero: never seen here since the load, so not dormant by another
	// replica's account either (its activity would be newer).
	if l.excl || !hasEvents || at.IsZero() || reg.Dormancy <= 0 || now.Sub(at) <= reg.Dormancy {
		return at, true
	}
	return at, false
}

// storedActivity reads the subjects' activity from the store in one
// read and keeps what is newer than memory. A failed read is logged and
// answers nothing (memory stands, as before a batch read existed).
func (l *Ledger) storedActivity(ctx context.Context, subjects []Ref) map[Ref]time.Time {
	st, err := l.store.Activities(ctx, subjects)
	if err != nil {
		l.log.Warn("consent: read activity", "subjects", len(subjects), "err", err)
		return nil
	}
	l.amu.Lock()
	for r, at := range st {
		if at.After(l.active[r]) {
			l.active[r] = at
		}
	}
	l.amu.Unlock()
	return st
}
