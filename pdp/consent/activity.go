package consent

import (
	"context"
	"fmt"
	"maps"
	"sort"
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
// activity in one statement (PostgresStore). On failure, SetActivities
// returns the marks it did not store (the others are stored).
type activityBatcher interface {
	SetActivities(ctx context.Context, at map[Ref]time.Time) (unstored map[Ref]time.Time, err error)
}

var _ activityBatcher = (*PostgresStore)(nil)

// activityChunk bounds the rows of one SetActivities statement (unless
// the store's activityChunk, set by tests, is smaller).
const activityChunk = 10_000

// SetActivities records many subjects' activity: one upsert per
// activityChunk subjects (each keeps the later time), instead of one round
// trip per subject, in the order of the subjects' names. Each chunk
// commits on its own: when one fails, the chunks before it are stored,
// and it returns the error with the marks of the failed chunk and of
// those after it (not tried), which are not stored.
func (s *PostgresStore) SetActivities(ctx context.Context, at map[Ref]time.Time) (map[Ref]time.Time, error) {
	chunk := activityChunk
	if s.activityChunk > 0 {
		chunk = min(chunk, s.activityChunk)
	}
	refs := make([]Ref, 0, len(at))
	for r := range at {
		refs = append(refs, r)
	}
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.String()
	}
	sort.Sort(refsByName{refs, names})
	times := make([]time.Time, 0, min(len(refs), chunk))
	for from := 0; from < len(refs); from += chunk {
		to := min(from+chunk, len(refs))
		times = times[:0]
		for _, r := range refs[from:to] {
			times = append(times, storedTime(at[r]))
		}
		_, err := s.pool.Exec(ctx, `INSERT INTO pdp_consent_activity (subject, last_active)
			SELECT * FROM unnest($1::text[], $2::timestamptz[])
			ON CONFLICT (subject) DO UPDATE
			SET last_active = greatest(pdp_consent_activity.last_active, excluded.last_active)`, names[from:to], times)
		if err != nil {
			unstored := make(map[Ref]time.Time, len(refs)-from)
			for _, r := range refs[from:] {
				unstored[r] = at[r]
			}
			return unstored, fmt.Errorf("consent: postgres set activity of %d subjects (%d stored before): %w", to-from, from, err)
		}
	}
	return nil, nil
}

// refsByName sorts refs by their names (names[i] is refs[i].String()).
type refsByName struct {
	refs  []Ref
	names []string
}

func (r refsByName) Len() int           { return len(r.refs) }
func (r refsByName) Less(i, j int) bool { return r.names[i] < r.names[j] }
func (r refsByName) Swap(i, j int) {
	r.refs[i], r.refs[j] = r.refs[j], r.refs[i]
	r.names[i], r.names[j] = r.names[j], r.names[i]
}
