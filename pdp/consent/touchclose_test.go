package consent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink safe for the concurrent Touches.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTouchAroundClose: every activity mark is stored by Close's final
// flush or, when it comes after Close (a recorded decision committed
// after shutdown gave up draining), logged as an error with its subject;
// none is dropped silently. Touches racing Close are each one or the
// other.
func TestTouchAroundClose(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		var logs syncBuffer
		e := newLenv(t, st, sfx, func(c *LedgerConfig) {
			c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			c.ActivityFlushInterval = time.Hour // only Close flushes
		})
		at := ledgerToday.Add(-time.Hour)
		const n = 200
		refs := make([]Ref, n)
		for i := range refs {
			refs[i] = e.user(fmt.Sprintf("toucher-%03d", i))
		}
		var wg sync.WaitGroup
		for i := range refs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.l.Touch(refs[i], at)
			}()
		}
		if err := e.l.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		late := e.user("late")
		e.l.Touch(late, at)
		stored, err := st.Activities(context.Background(), append(refs, late))
		if err != nil {
			t.Fatal(err)
		}
		out := logs.String()
		if _, ok := stored[late]; ok || !strings.Contains(out, "subject="+late.String()) {
			t.Fatalf("a Touch after Close: stored %v, logged %q; want it logged with its subject", ok, out)
		}
		for _, r := range refs {
			_, ok := stored[r]
			logged := strings.Contains(out, "subject="+r.String()+" ")
			if ok == logged {
				t.Errorf("%s: stored %v, logged %v: want exactly one", r, ok, logged)
			}
		}
		if strings.Contains(out, "level=ERROR") && !strings.Contains(out, "after the ledger closed") {
			t.Errorf("unexpected errors: %s", out)
		}
	})
}
