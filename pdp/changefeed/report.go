package changefeed

import (
	"context"
	"slices"
	"sync"
)

// Report collects what the changes published under a context did, for a
// caller that makes a change through a service which publishes it (the
// admin API names the sidecars that did not acknowledge it). It is safe
// for concurrent use.
type Report struct {
	mu      sync.Mutex
	seq     uint64
	unacked []SidecarRef
}

type reportKey struct{}

// WithReport returns ctx carrying a new Report, which every Publish and
// PublishReport under it adds to.
func WithReport(ctx context.Context) (context.Context, *Report) {
	r := &Report{}
	return context.WithValue(ctx, reportKey{}, r), r
}

// AddToReport adds p to the Report ctx carries, if any: for a publisher
// that wraps the feed (pdp/changefeed/pgfeed).
func AddToReport(ctx context.Context, p Published) {
	if r, ok := ctx.Value(reportKey{}).(*Report); ok {
		r.add(p)
	}
}

func (r *Report) add(p Published) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq = max(r.seq, p.Seq)
	r.unacked = sortRefs(append(r.unacked, p.Unacknowledged...))
}

// Seq is the seq of the last change published (0: none).
func (r *Report) Seq() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// Unacknowledged are the sidecars that did not acknowledge a change
// published (sorted, possibly repeated when several changes were).
func (r *Report) Unacknowledged() []SidecarRef {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.unacked)
}
