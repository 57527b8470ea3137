// Package detach makes contexts for work that must outlive a caller who
// hangs up (a read-back after a failed write) without outliving the
// caller's own deadline.
package detach

import (
	"context"
	"time"
)

// Within is ctx without its cancellation, ended after bound or at ctx's
// own deadline, whichever comes first. It keeps ctx's values.
func Within(ctx context.Context, bound time.Duration) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(bound)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return context.WithDeadline(context.WithoutCancel(ctx), deadline)
}
