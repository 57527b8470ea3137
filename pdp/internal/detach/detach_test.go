package detach

import (
	"context"
	"testing"
	"time"
)

// TestWithin: a hang-up does not end the context; the bound or the
// caller's deadline does, whichever is first; values are kept.
func TestWithin(t *testing.T) {
	type key struct{}
	for _, tc := range []struct {
		name        string
		callerAfter time.Duration // 0: no deadline
		bound       time.Duration
		want        time.Duration
	}{
		{"bound first", time.Hour, time.Minute, time.Minute},
		{"caller's deadline first", time.Minute, time.Hour, time.Minute},
		{"no caller deadline", 0, time.Minute, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, hangUp := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
			if tc.callerAfter > 0 {
				var cancel context.CancelFunc
				parent, cancel = context.WithTimeout(parent, tc.callerAfter)
				defer cancel()
			}
			start := time.Now()
			ctx, cancel := Within(parent, tc.bound)
			defer cancel()
			hangUp()
			if ctx.Err() != nil {
				t.Fatalf("ended with the caller's cancellation: %v", ctx.Err())
			}
			if ctx.Value(key{}) != "v" {
				t.Fatal("values lost")
			}
			d, ok := ctx.Deadline()
			if !ok {
				t.Fatal("no deadline")
			}
			if got := d.Sub(start); got > tc.want+time.Second || got < tc.want-time.Second {
				t.Fatalf("deadline in %v, want about %v", got, tc.want)
			}
		})
	}
}
