package consent

import (
	"context"
	"fmt"
	"maps"
	"time"
)

// The Ledger's activity is the PDP's one record of activity: besides the
// subjects of consent (the principal of an allowed decision, Touch), the
// dormancy guard keeps activity per role under refs of its own (package
// dormancy). Both are kept, flushed and shared the same way.

// LastActive returns the last activity of each ref that has one. With a
// store shared by replicas, refs that look idle for longer than horizon in
// memory are read from the store first (one read for all of them): the
// answer is then at most one flush interval (ActivityFlushInterval) behind
// the activity seen by any replica. A failed read is an error (the caller
// fails closed); an exclusive store (a file) is never read.
func (l *Ledger) LastActive(ctx context.Context, refs []Ref, now time.Time, horizon time.Duration) (map[Ref]time.Time, error) {
	out := make(map[Ref]time.Time, len(refs))
	var stale []Ref
	l.amu.RLock()
	for _, r := range refs {
		at, ok := l.active[r]
		if !ok {
			continue
		}
		out[r] = at
		if !l.excl && horizon > 0 && now.Sub(at) > horizon {
			stale = append(stale, r)
		}
	}
	l.amu.RUnlock()
	if len(stale) == 0 {
		return out, nil
	}
	st, err := l.store.Activities(ctx, stale)
	if err != nil {
		return nil, fmt.Errorf("consent: read activity: %w", err)
	}
	l.amu.Lock()
	for r, at := range st {
		if at.After(l.active[r]) {
			l.active[r] = at
		}
		if at.After(out[r]) {
			out[r] = at
		}
	}
	l.amu.Unlock()
	return out, nil
}

// ActivitySnapshot returns every ref's last activity as this process
// knows it (loaded at start, and every Touch since); with a shared store,
// the store's activity too, the later of the two.
func (l *Ledger) ActivitySnapshot(ctx context.Context) (map[Ref]time.Time, error) {
	l.amu.RLock()
	out := maps.Clone(l.active)
	l.amu.RUnlock()
	if l.excl {
		return out, nil
	}
	scan, ok := l.store.(Scanner)
	if !ok {
		return out, nil
	}
	st, err := scan.AllActivity(ctx)
	if err != nil {
		return nil, fmt.Errorf("consent: read activity: %w", err)
	}
	for r, at := range st {
		if at.After(out[r]) {
			out[r] = at
		}
	}
	return out, nil
}

// GrantsOf names the subject's grants in force, as "grant id:purpose"
// (for the dormancy report).
func (l *Ledger) GrantsOf(ctx context.Context, subject Ref) ([]string, error) {
	st, err := l.CurrentFor(ctx, subject, Reader{Admin: true})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(st.Grants))
	for _, g := range st.Grants {
		out = append(out, g.ID+":"+g.Purpose)
	}
	return out, nil
}

// activityBatcher is implemented by stores that write many subjects'
// activity in one statement (PostgresStore).
type activityBatcher interface {
	SetActivities(ctx context.Context, at map[Ref]time.Time) error
}

var _ activityBatcher = (*PostgresStore)(nil)

// activityChunk bounds the rows of one SetActivities statement.
const activityChunk = 10_000

// SetActivities records many subjects' activity: one upsert per
// activityChunk subjects (each keeps the later time), instead of one round
// trip per subject. A failed chunk fails the call; the chunks before it
// are stored.
func (s *PostgresStore) SetActivities(ctx context.Context, at map[Ref]time.Time) error {
	names := make([]string, 0, min(len(at), activityChunk))
	times := make([]time.Time, 0, cap(names))
	flush := func() error {
		if len(names) == 0 {
			return nil
		}
		_, err := s.pool.Exec(ctx, `INSERT INTO pdp_consent_activity (subject, last_active)
			SELECT * FROM unnest($1::text[], $2::timestamptz[])
			ON CONFLICT (subject) DO UPDATE
			SET last_active = greatest(pdp_consent_activity.last_active, excluded.last_active)`, names, times)
		if err != nil {
			return fmt.Errorf("consent: postgres set activity of %d subjects: %w", len(names), err)
		}
		names, times = names[:0], times[:0]
		return nil
	}
	for r, t := range at {
		names, times = append(names, r.String()), append(times, storedTime(t))
		if len(names) == activityChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
