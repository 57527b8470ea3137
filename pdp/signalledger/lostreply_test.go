package signalledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/signals"
)

// lostReply is a real store whose Append stores and then fails (a COMMIT
// whose reply was lost, a file the store could not cut back): only the
// answer is wrong.
type lostReply struct{ Store }

func (s lostReply) Append(ctx context.Context, evs []signals.Event) ([]signals.Event, error) {
	if _, err := s.Store.Append(ctx, evs); err != nil {
		return nil, err
	}
	return nil, errors.New("connection reset by peer (the reply to COMMIT was lost)")
}

// refused is a real store whose Append stores nothing and fails.
type refused struct{ Store }

func (s refused) Append(context.Context, []signals.Event) ([]signals.Event, error) {
	return nil, errors.New("no space left on device")
}

// noteJournal records what the ledger journals.
type noteJournal struct {
	mu         sync.Mutex
	recorded   []string
	notApplied []string
}

func (j *noteJournal) RecordSignal(_ context.Context, _, jti string, _ []signals.Event) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.recorded = append(j.recorded, jti)
	return nil
}

func (j *noteJournal) SignalNotApplied(_ context.Context, _, jti string, _ error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.notApplied = append(j.notApplied, jti)
	return nil
}

// TestLostReplyIsStored: a SET the store holds although its append
// failed is taken as stored (answered, indexed, told to OnStored), not
// recorded as not applied; a SET the store refused is recorded as not
// applied, as before. On every store kind.
func TestLostReplyIsStored(t *testing.T) {
	for kind, open := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			for _, c := range []struct {
				name   string
				wrap   func(Store) Store
				stored bool
			}{
				{"lost reply", func(s Store) Store { return lostReply{s} }, true},
				{"refused", func(s Store) Store { return refused{s} }, false},
			} {
				t.Run(c.name, func(t *testing.T) {
					st := open(t)
					j := &noteJournal{}
					var told []signals.Event
					l, err := NewLedger(context.Background(), LedgerConfig{Store: c.wrap(st), Journal: j,
						Registry: func() *signals.Registry { return northbankRegistry(t) }, Now: func() time.Time { return testNow },
						OnStored: func(_ context.Context, evs []signals.Event, _ []dormancy.SignalRevalidation) {
							told = append(told, evs...)
						}})
					if err != nil {
						t.Fatal(err)
					}
					jti := fmt.Sprintf("lost-%s-%d", kind, time.Now().UnixNano())
					evs, err := l.Receive(context.Background(), set(jti, "credential-compromise", bobID()))
					if c.stored {
						if err != nil || len(evs) != 1 || evs[0].Position == 0 {
							t.Fatalf("receive over a lost reply: %v %+v, want the stored event", err, evs)
						}
						if len(j.notApplied) != 0 || len(told) != 1 || len(l.For(evs[0].Entity)) == 0 {
							t.Fatalf("not applied %v, told %d, indexed %d", j.notApplied, len(told), len(l.For(evs[0].Entity)))
						}
						return
					}
					if err == nil || len(j.notApplied) != 1 || j.notApplied[0] != jti || len(told) != 0 {
						t.Fatalf("refused: %v, not applied %v, told %d", err, j.notApplied, len(told))
					}
					all, _ := st.Since(context.Background(), 0)
					for _, e := range all {
						if e.JTI == jti {
							t.Fatalf("stored: %+v", e)
						}
					}
				})
			}
		})
	}
}

// TestKeptInFileIsStored: a SET whose fsync failed and that the file
// store could not cut back off the file is in the file: it is taken as
// stored, not recorded as not applied, and a reopen reads it.
func TestKeptInFileIsStored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signals.jsonl")
	st, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.file.Sync = func(*os.File) error { return errors.New("input/output error") }
	st.file.Truncate = func(*os.File, int64) error { return errors.New("read-only file system") }
	j := &noteJournal{}
	l, err := NewLedger(context.Background(), LedgerConfig{Store: st, Journal: j,
		Registry: func() *signals.Registry { return northbankRegistry(t) }, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := l.Receive(context.Background(), set("kept-1", "credential-compromise", bobID()))
	if err != nil || len(evs) != 1 || len(j.notApplied) != 0 {
		t.Fatalf("%v %+v, not applied %v", err, evs, j.notApplied)
	}
	_ = st.Close()
	again, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if all, _ := again.Since(context.Background(), 0); len(all) != 1 || all[0].JTI != "kept-1" {
		t.Fatalf("reopened: %+v", all)
	}
}

// TestOnStoredOutlivesTheRequest: what a stored SET implies is made even
// when the transmitter hangs up once the SET is stored (its retry would
// be a duplicate): OnStored's context is not cancelled with the
// request's, and is bounded.
func TestOnStoredOutlivesTheRequest(t *testing.T) {
	st, err := OpenFile(filepath.Join(t.TempDir(), "signals.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx, hangUp := context.WithCancel(context.Background())
	defer hangUp()
	var onStored error
	var deadline time.Time
	l, err := NewLedger(ctx, LedgerConfig{Store: st, Registry: func() *signals.Registry { return northbankRegistry(t) },
		OnStored: func(octx context.Context, _ []signals.Event, _ []dormancy.SignalRevalidation) {
			hangUp()
			onStored = octx.Err()
			deadline, _ = octx.Deadline()
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Receive(ctx, set("hangup-1", "credential-compromise", bobID())); err != nil {
		t.Fatal(err)
	}
	if onStored != nil || deadline.IsZero() || time.Until(deadline) > OnStoredBound {
		t.Fatalf("OnStored's context after the hang-up: %v, deadline %v", onStored, deadline)
	}
}
