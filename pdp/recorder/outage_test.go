package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// flakyLog is the storage-edge fake: it fails while err is set.
type flakyLog struct {
	err  atomic.Pointer[error]
	mu   sync.Mutex
	recs []trail.Record
}

func (f *flakyLog) Append(_ context.Context, recs ...trail.Record) ([]uint64, error) {
	if p := f.err.Load(); p != nil {
		return nil, *p
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	seqs := make([]uint64, len(recs))
	for i, r := range recs {
		seqs[i] = uint64(len(f.recs))
		f.recs = append(f.recs, r)
	}
	return seqs, nil
}

func (f *flakyLog) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.recs {
		var b AdminBody
		if r.Kind == KindAdmin && json.Unmarshal(r.Body, &b) == nil {
			out = append(out, b.Action)
		}
	}
	return out
}

// TestRecorderRecoversAfterOutage: a failed write makes the recorder
// unavailable (Ready fails, decisions are denied) until a write succeeds
// again, in either mode; Ready's probe ends the outage without a decision
// and records it.
func TestRecorderRecoversAfterOutage(t *testing.T) {
	for _, mode := range []string{ModeSync, ModeAsync} {
		t.Run(mode, func(t *testing.T) {
			fl := &flakyLog{}
			r, err := NewRecorder(todoEngine(t), fl, RecorderOptions{Mode: mode, Buffer: 4})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx := context.Background()
			if err := r.Ready(ctx); err != nil {
				t.Fatalf("ready before the outage: %v", err)
			}
			disk := errors.New("no space left on device")
			fl.err.Store(&disk)
			_, _ = r.Decide(ctx, readTodos("t1")) // async: answered, its record lost
			eventually(t, func() bool { return r.Stats().Failures > 0 })
			d, _ := r.Decide(ctx, readTodos("t2"))
			isDenied(t, d)
			if err := r.Ready(ctx); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("ready during the outage: %v", err)
			}

			fl.err.Store(nil)
			time.Sleep(probeEvery)
			if err := r.Ready(ctx); err != nil {
				t.Fatalf("ready after the outage: %v", err)
			}
			if d, _ := r.Decide(ctx, readTodos("t3")); !d.Allowed {
				t.Fatalf("after the outage: %+v", d)
			}
			if got := fl.actions(); len(got) != 1 || got[0] != ActionRecovered {
				t.Errorf("admin records %v, want one %s", got, ActionRecovered)
			}
			if n := r.outages.Load(); n != 1 {
				t.Errorf("outages %d, want 1", n)
			}
		})
	}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}
