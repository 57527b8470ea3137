package revalidation

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/ciampdp/pdp/pdp/dormancy"
)

// lostReply is a real store whose Append stores and then fails (a COMMIT
// whose reply was lost): only the answer is wrong.
type lostReply struct{ Store }

func (s lostReply) Append(ctx context.Context, r Revalidation) (Revalidation, error) {
	if _, err := s.Store.Append(ctx, r); err != nil {
		return Revalidation{}, err
	}
	return Revalidation{}, errors.New("connection reset by peer (the reply to COMMIT was lost)")
}

// refusing is a real store whose Append stores nothing and fails.
type refusing struct{ Store }

func (s refusing) Append(context.Context, Revalidation) (Revalidation, error) {
	return Revalidation{}, errors.New("no space left on device")
}

type notAppliedNotes struct{ ids []string }

func (n *notAppliedNotes) RecordRevalidation(context.Context, Revalidation) error { return nil }
func (n *notAppliedNotes) RevalidationNotApplied(_ context.Context, r Revalidation, _ error) error {
	n.ids = append(n.ids, r.ID)
	return nil
}

// TestLostReplyIsInForce: a revalidation the store holds although its
// append failed is answered as made and is in force, with no not_applied
// record; one the store refused is not in force and is recorded as not
// applied.
func TestLostReplyIsInForce(t *testing.T) {
	for _, c := range []struct {
		name  string
		wrap  func(Store) Store
		force bool
	}{
		{"lost reply", func(s Store) Store { return lostReply{s} }, true},
		{"refused", func(s Store) Store { return refusing{s} }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			notes := &notAppliedNotes{}
			svc, _ := fileSetup(t, notes)
			inner := svc.c.Store
			svc.c.Store = c.wrap(inner)
			got, err := svc.RevalidateIdentity(context.Background(), RevalidateRequest{Subject: Ref{Type: "user", ID: "heidi"},
				By: Actor{Application: "backoffice", Subject: Ref{Type: "staff", ID: "kim"}}})
			_, inForce := svc.Latest("user:heidi")
			stored, _ := inner.After(context.Background(), 0)
			if c.force {
				if err != nil || got.Position == 0 || !inForce || len(notes.ids) != 0 || len(stored) != 1 {
					t.Fatalf("lost reply: %v %+v, in force %v, not applied %v, stored %d", err, got, inForce, notes.ids, len(stored))
				}
				return
			}
			if !errors.Is(err, ErrNotStored) || inForce || len(notes.ids) != 1 || len(stored) != 0 {
				t.Fatalf("refused: %v, in force %v, not applied %v, stored %d", err, inForce, notes.ids, len(stored))
			}
		})
	}
}

// TestSignalRevalidationNamesItsSET: a signal's revalidation names its
// transmitter, event type and jti, and is made once per SET event: the
// same SET again returns the first, another jti makes another.
func TestSignalRevalidationNamesItsSET(t *testing.T) {
	svc, path := fileSetup(t, nil)
	ctx := context.Background()
	ivan := Ref{Type: "user", ID: "ivan"}
	const tx, typ = "https://idp.northbank.example/", "https://schemas.openid.net/secevent/caep/event-type/assurance-level-change"
	first, err := svc.RevalidateOnSignal(ctx, ivan, tx, typ, "jti-1")
	if err != nil {
		t.Fatal(err)
	}
	if want := "signal:" + tx + " " + typ + " jti-1"; first.Source != want || first.Source != dormancy.SignalSource(tx, typ, "jti-1") {
		t.Fatalf("source %q, want %q", first.Source, want)
	}
	again, err := svc.RevalidateOnSignal(ctx, ivan, tx, typ, "jti-1")
	if err != nil || again.ID != first.ID {
		t.Fatalf("the same SET again: %v %+v, want %s", err, again, first.ID)
	}
	other, err := svc.RevalidateOnSignal(ctx, ivan, tx, typ, "jti-2")
	if err != nil || other.ID == first.ID {
		t.Fatalf("another SET: %v %+v", err, other)
	}
	// After a restart the index is read from the store: still once.
	if err := svc.c.Store.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc2, err := NewService(ctx, Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if again, err := svc2.RevalidateOnSignal(ctx, ivan, tx, typ, "jti-1"); err != nil || again.ID != first.ID {
		t.Fatalf("the same SET after a restart: %v %+v, want %s", err, again, first.ID)
	}
	if _, err := svc2.RevalidateOnSignal(ctx, ivan, tx, typ, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("without a jti: %v", err)
	}
}

// TestKeptInFileIsInForce: a revalidation whose fsync failed and that the
// file store could not cut back off the file is in the file: it is
// answered as made and in force, with no not_applied record, and a
// reopen reads it.
func TestKeptInFileIsInForce(t *testing.T) {
	notes := &notAppliedNotes{}
	svc, path := fileSetup(t, notes)
	fs := svc.c.Store.(*FileStore)
	fs.f.Sync = func(*os.File) error { return errors.New("input/output error") }
	fs.f.Truncate = func(*os.File, int64) error { return errors.New("read-only file system") }
	got, err := svc.RevalidateIdentity(context.Background(), RevalidateRequest{Subject: Ref{Type: "user", ID: "heidi"},
		By: Actor{Application: "backoffice", Subject: Ref{Type: "staff", ID: "kim"}}})
	if _, inForce := svc.Latest("user:heidi"); err != nil || !inForce || len(notes.ids) != 0 {
		t.Fatalf("%v %+v, in force %v, not applied %v", err, got, inForce, notes.ids)
	}
	_ = fs.Close()
	st, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if rs, _ := st.After(context.Background(), 0); len(rs) != 1 || rs[0].ID != got.ID {
		t.Fatalf("reopened: %+v", rs)
	}
}
