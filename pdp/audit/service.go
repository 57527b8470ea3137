package audit

import (
	"context"
)

// Service answers the auditor endpoints of a running PDP over its trail
// and archive.
type Service struct {
	Trail   Source
	Archive Bundles
	// Reveal opens redacted values (nil: they stay hidden). A running PDP
	// holds no auditor identity, so it is normally nil.
	Reveal Revealer
}

// Explain finds decision id and explains it.
func (s Service) Explain(ctx context.Context, id string) (Explanation, error) {
	rec, err := Find(ctx, s.Trail, id)
	if err != nil {
		return Explanation{}, err
	}
	return Explain(rec, s.Archive, s.Reveal)
}

// Query lists the decisions matching f.
func (s Service) Query(ctx context.Context, f Filter, limit int) (QueryResult, error) {
	return Query(ctx, s.Trail, f, limit)
}
