package signalledger

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/signals"
)

// syncedLostReply is a real store whose Append stores, lets the ledger's
// background sync index the new rows, and then fails: the reply lost
// after another reader already saw the row.
type syncedLostReply struct {
	Store
	ledger func() *Ledger
}

func (s syncedLostReply) Append(ctx context.Context, evs []signals.Event) ([]signals.Event, error) {
	if _, err := s.Store.Append(ctx, evs); err != nil {
		return nil, err
	}
	if err := s.ledger().Sync(ctx); err != nil {
		return nil, err
	}
	return nil, errors.New("connection reset by peer (the reply to COMMIT was lost)")
}

// TestLostReplyAfterConcurrentSync: a SET whose rows a concurrent sync
// indexed before the append's lost reply is known is taken as stored
// (answered, told to OnStored), not recorded as not applied.
func TestLostReplyAfterConcurrentSync(t *testing.T) {
	for kind, open := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			j := &noteJournal{}
			var l *Ledger
			var told []signals.Event
			var err error
			l, err = NewLedger(context.Background(), LedgerConfig{Store: syncedLostReply{open(t), func() *Ledger { return l }}, Journal: j,
				Registry: func() *signals.Registry { return northbankRegistry(t) }, Now: func() time.Time { return testNow },
				OnStored: func(_ context.Context, evs []signals.Event, _ []dormancy.SignalRevalidation) {
					told = append(told, evs...)
				}})
			if err != nil {
				t.Fatal(err)
			}
			jti := fmt.Sprintf("synced-%s-%d", kind, time.Now().UnixNano())
			evs, err := l.Receive(context.Background(), set(jti, "credential-compromise", bobID()))
			if err != nil || len(evs) != 1 || evs[0].Position == 0 {
				t.Fatalf("receive over a lost reply after a sync: %v %+v, want the stored event", err, evs)
			}
			if len(j.notApplied) != 0 || len(told) != 1 {
				t.Fatalf("not applied %v, told %d", j.notApplied, len(told))
			}
		})
	}
}

// TestSlowOnStoredDoesNotDelayAnotherSET: OnStored runs outside the
// ledger's write lock, so a revalidation store that does not answer
// delays no other SET.
func TestSlowOnStoredDoesNotDelayAnotherSET(t *testing.T) {
	st, err := OpenFile(filepath.Join(t.TempDir(), "signals.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	pub := &countingPublisher{}
	l, err := NewLedger(context.Background(), LedgerConfig{Store: st, Publisher: pub,
		Registry: func() *signals.Registry { return northbankRegistry(t) },
		OnStored: func(_ context.Context, evs []signals.Event, _ []dormancy.SignalRevalidation) {
			entered <- struct{}{}
			if evs[0].JTI == "slow-1" {
				<-release
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		_, err := l.Receive(context.Background(), set("slow-1", "credential-compromise", bobID()))
		first <- err
	}()
	<-entered // the first SET's OnStored is running (and blocked)
	if pub.n != 1 {
		t.Fatalf("the first SET was published %d times before its OnStored ran, want 1", pub.n)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Receive(context.Background(), set("slow-2", "credential-compromise", bobID()))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("a second SET waited for the first SET's OnStored")
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// TestOnStoredMakesTheRecordedRevalidations: OnStored is given the
// revalidations computed for the trail record, not a second computation
// (the bundle may change in between).
func TestOnStoredMakesTheRecordedRevalidations(t *testing.T) {
	st, err := OpenFile(filepath.Join(t.TempDir(), "signals.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	var mu sync.Mutex
	calls := 0
	var got []dormancy.SignalRevalidation
	l, err := NewLedger(context.Background(), LedgerConfig{Store: st, Journal: &noteJournal{},
		Registry: func() *signals.Registry { return northbankRegistry(t) },
		Revalidates: func([]signals.Event) []dormancy.SignalRevalidation {
			mu.Lock()
			defer mu.Unlock()
			calls++ // a bundle that changes with every call
			return []dormancy.SignalRevalidation{{Type: fmt.Sprintf("call-%d", calls), Subject: dormancy.Ref{Type: "user", ID: "bob"}}}
		},
		OnStored: func(_ context.Context, _ []signals.Event, rs []dormancy.SignalRevalidation) { got = rs }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Receive(context.Background(), set("recorded-1", "credential-compromise", bobID())); err != nil {
		t.Fatal(err)
	}
	if calls != 1 || len(got) != 1 || got[0].Type != "call-1" {
		t.Fatalf("Revalidates called %d times, OnStored given %+v; want one call and its answer", calls, got)
	}
}

// deadStore stores nothing and never answers a read.
type deadStore struct{ Store }

func (deadStore) Append(context.Context, []signals.Event) ([]signals.Event, error) {
	return nil, errors.New("connection refused")
}

func (deadStore) Since(context.Context, int64) ([]signals.Event, error) {
	return nil, errors.New("connection refused")
}

// TestRereadKeepsTheRequestDeadline: the read-back after a failed append
// ends at the request's deadline when that comes before RereadBound.
func TestRereadKeepsTheRequestDeadline(t *testing.T) {
	st, err := OpenFile(filepath.Join(t.TempDir(), "signals.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	l, err := NewLedger(context.Background(), LedgerConfig{Store: st, Registry: func() *signals.Registry { return northbankRegistry(t) }})
	if err != nil {
		t.Fatal(err)
	}
	l.cfg.Store = deadStore{st}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = l.storedAnyway(ctx, []signals.Event{{Transmitter: testIss, JTI: "dead-1", ReceivedAt: testNow}}, 0)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the read-back took %s; the request's deadline was 300ms", took)
	}
}
