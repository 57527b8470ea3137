package revalidation

import (
	"context"
	"errors"
	"testing"
	"time"
)

// caughtUpLostReply is a real store whose Append stores, lets the
// service's catch-up (States on a shared store) index the new row, and
// then fails: the reply lost after another reader already saw the row.
type caughtUpLostReply struct {
	Store
	svc func() *Service
}

func (s caughtUpLostReply) Append(ctx context.Context, r Revalidation) (Revalidation, error) {
	if _, err := s.Store.Append(ctx, r); err != nil {
		return Revalidation{}, err
	}
	if err := s.svc().catchUp(ctx); err != nil {
		return Revalidation{}, err
	}
	return Revalidation{}, errors.New("connection reset by peer (the reply to COMMIT was lost)")
}

// TestLostReplyAfterCatchUpIsInForce: a revalidation a concurrent
// catch-up indexed before the append's lost reply is known is answered
// as made, with no not_applied record.
func TestLostReplyAfterCatchUpIsInForce(t *testing.T) {
	notes := &notAppliedNotes{}
	svc, _ := fileSetup(t, notes)
	svc.c.Store = caughtUpLostReply{svc.c.Store, func() *Service { return svc }}
	got, err := svc.RevalidateIdentity(context.Background(), RevalidateRequest{Subject: Ref{Type: "user", ID: "heidi"},
		By: Actor{Application: "backoffice", Subject: Ref{Type: "staff", ID: "kim"}}})
	if _, inForce := svc.Latest("user:heidi"); err != nil || got.Position == 0 || !inForce || len(notes.ids) != 0 {
		t.Fatalf("%v %+v, in force %v, not applied %v", err, got, inForce, notes.ids)
	}
}

// deadStore stores nothing and never answers a read.
type deadStore struct{ Store }

func (deadStore) Append(context.Context, Revalidation) (Revalidation, error) {
	return Revalidation{}, errors.New("connection refused")
}

func (deadStore) After(context.Context, int64) ([]Revalidation, error) {
	return nil, errors.New("connection refused")
}

// TestRereadKeepsTheCallerDeadline: the read-back after a failed append
// stops at the caller's deadline when that comes before RereadBound, and
// outlives a caller that only hangs up.
func TestRereadKeepsTheCallerDeadline(t *testing.T) {
	for _, c := range []struct {
		name    string
		timeout time.Duration
		want    time.Duration
	}{
		{"deadline sooner", 50 * time.Millisecond, 50 * time.Millisecond},
		{"deadline later", time.Hour, RereadBound},
		{"no deadline", 0, RereadBound},
	} {
		t.Run(c.name, func(t *testing.T) {
			parent, cancelParent := context.WithCancel(context.Background())
			if c.timeout > 0 {
				parent, cancelParent = context.WithTimeout(context.Background(), c.timeout)
			}
			start := time.Now()
			ctx, cancel := RereadContext(parent, RereadBound)
			defer cancel()
			cancelParent()
			d, ok := ctx.Deadline()
			if !ok || d.Sub(start) > c.want+time.Second || d.Sub(start) < c.want-time.Second {
				t.Fatalf("deadline in %s, want about %s", d.Sub(start), c.want)
			}
			if c.timeout >= RereadBound || c.timeout == 0 {
				if ctx.Err() != nil {
					t.Fatalf("cancelled with the caller: %v", ctx.Err())
				}
			}
		})
	}
	notes := &notAppliedNotes{}
	svc, _ := fileSetup(t, notes)
	svc.c.Store = deadStore{svc.c.Store}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, ok := svc.storedAnyway(ctx, Revalidation{ID: "rv-dead"}, 0); ok || time.Since(start) > 2*time.Second {
		t.Fatalf("read-back of a dead store: found %v after %s; the caller's deadline was 300ms", ok, time.Since(start))
	}
}
