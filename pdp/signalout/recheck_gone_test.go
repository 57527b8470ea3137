package signalout

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/ciampdp/pdp/pdp/delegation"
)

// TestOutboxRecordGoneAfterQueueing: a SET whose delegation no longer
// exists at the next start (retention deleted it) still goes out when it
// was queued for the receiver's own application — it was allowed then —
// and is dropped, counted, when it was queued for another one.
func TestOutboxRecordGoneAfterQueueing(t *testing.T) {
	for _, c := range []struct {
		name, queuedFor, now string
		pending              int
		dropped              float64
	}{
		{"same application", "mobile-banking", "mobile-banking", 1, 0},
		{"another application", "mobile-banking", "advisor-portal", 0, 1},
		{"queued for none", "", "mobile-banking", 0, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newRecheckEnv(t)
			ctx := context.Background()
			var logs bytes.Buffer
			tx := e.start(c.queuedFor, &logs)
			tx.DelegationChanged(ctx, e.revoke("mobile-banking"))
			tx.Release(ctx)
			if n := tx.Pending(e.endpoint); n != 1 {
				t.Fatalf("%d queued, want 1", n)
			}
			_ = tx.Close()

			empty, err := delegation.OpenFile(filepath.Join(t.TempDir(), "empty.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = empty.Close() })
			e.svc = delegation.NewService(delegation.Config{Store: empty})
			tx = e.start(c.now, &logs)
			defer tx.Close()
			tx.Release(ctx)
			if n, d := tx.Pending(e.endpoint), dropped(t, tx, e.endpoint); n != c.pending || d != c.dropped {
				t.Fatalf("%d pending, %v dropped; want %d and %v\n%s", n, d, c.pending, c.dropped, logs.String())
			}
		})
	}
}
