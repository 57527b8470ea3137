package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// QueryPage lists the decisions matching f newest first: at most limit
// (1…1000) of those with a sequence number below before (0: from the
// newest). Matched counts every match, before or not; Truncated says that
// older matches remain (the next page starts before the last entry's Seq).
func (s Service) QueryPage(ctx context.Context, f Filter, before uint64, limit int) (QueryResult, error) {
	if limit <= 0 || limit > 1000 {
		return QueryResult{}, fmt.Errorf("%w: limit %d must be 1…1000", ErrBadFilter, limit)
	}
	if s.Index != nil {
		return s.Index.Page(ctx, s.Trail, f, before, limit)
	}
	return scanPage(ctx, s.Trail, f, before, limit)
}

// scanPage is QueryPage by a scan of the whole trail.
func scanPage(ctx context.Context, src Source, f Filter, before uint64, limit int) (QueryResult, error) {
	all, err := Query(ctx, src, f, int(^uint(0)>>1))
	if err != nil {
		return QueryResult{}, err
	}
	res := QueryResult{Filter: f, Scanned: all.Scanned, Matched: all.Matched, Entries: []Entry{}}
	for i := len(all.Entries) - 1; i >= 0; i-- {
		e := all.Entries[i]
		if before != 0 && e.Seq >= before {
			continue
		}
		if len(res.Entries) == limit {
			res.Truncated = true
			break
		}
		res.Entries = append(res.Entries, e)
	}
	return res, nil
}

// PerMinute counts the decisions recorded in each of n minutes from start:
// from the index, else by a scan.
func (s Service) PerMinute(ctx context.Context, start time.Time, n int) ([]int, error) {
	if s.Index != nil {
		return s.Index.PerMinute(ctx, s.Trail, start, n)
	}
	counts := make([]int, n)
	err := s.Trail.Scan(0, s.Trail.Size(), func(rec trail.Record) error {
		if (rec.Kind == recorder.KindDecision || rec.Kind == trail.KindSidecar) && !rec.Pruned && !rec.Time.Before(start) {
			if i := int(rec.Time.Sub(start) / time.Minute); i < n {
				counts[i]++
			}
		}
		return ctx.Err()
	})
	return counts, err
}
