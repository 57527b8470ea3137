package audit

import (
	"context"
	"fmt"
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
