package revalidation

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"github.com/ciampdp/pdp/pdp/dormancy"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
)

var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func openLedger(t testing.TB, st consent.Store) *consent.Ledger {
	t.Helper()
	l, err := consent.NewLedger(consent.LedgerConfig{Store: st, SigningKey: ed25519.NewKeyFromSeed(make([]byte, 32)),
		Now: func() time.Time { return testNow }, ActivityFlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// fileSetup is a service on files: a consent ledger (the activity), the
// delegation records (alice's power of attorney to victor, accepted in
// 2019, and one only offered) and the revalidations.
func fileSetup(t *testing.T, journal Journal) (*Service, string) {
	t.Helper()
	dir := t.TempDir()
	cst, err := consent.OpenFile(filepath.Join(dir, "c.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cst.Close() })
	ledger := openLedger(t, cst)
	dst, err := delegation.OpenFile(filepath.Join(dir, "d.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dst.Close() })
	dels := delegation.NewService(delegation.Config{Store: dst, Now: func() time.Time { return testNow }})
	accepted := time.Date(2019, 2, 21, 0, 0, 0, 0, time.UTC)
	alice, victor := delegation.Ref{Type: "user", ID: "alice"}, delegation.Ref{Type: "user", ID: "victor"}
	by := delegation.Actor{Application: "app", Subject: alice}
	if err := dels.Import(context.Background(), []delegation.Delegation{
		{ID: "poa-v", Principal: alice, Agent: victor, Basis: delegation.BasisPowerOfAttorney, Source: delegation.SourceSelfDeclared,
			Scope: []string{"view"}, ValidFrom: accepted, ValidUntil: testNow.AddDate(3, 0, 0), Status: delegation.StatusActive,
			CreatedBy: by, CreatedAt: accepted, AcceptedAt: &accepted, Version: 1,
			History: []delegation.Event{{Seq: 1, Type: delegation.EventOffered, At: accepted, By: by, Status: delegation.StatusActive}}},
		{ID: "poa-o", Principal: alice, Agent: victor, Basis: delegation.BasisPowerOfAttorney, Source: delegation.SourceSelfDeclared,
			Scope: []string{"view"}, ValidFrom: accepted, ValidUntil: testNow.AddDate(3, 0, 0), Status: delegation.StatusOffered,
			CreatedBy: by, CreatedAt: accepted, Version: 1,
			History: []delegation.Event{{Seq: 1, Type: delegation.EventOffered, At: accepted, By: by, Status: delegation.StatusOffered}}},
	}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "r.jsonl")
	st, err := OpenFile(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc, err := NewService(context.Background(), Config{Store: st, Activity: LedgerActivity{ledger}, Delegations: dels, Journal: journal,
		AdminApplications: []string{"backoffice"}, ReconfirmApplications: []string{"banking"}, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return svc, path
}

type journalFunc func(Revalidation) error

func (f journalFunc) RecordRevalidation(_ context.Context, r Revalidation) error { return f(r) }

// TestAuthority: who may end a dormancy, and what the service refuses.
func TestAuthority(t *testing.T) {
	var journalled []Revalidation
	svc, _ := fileSetup(t, journalFunc(func(r Revalidation) error { journalled = append(journalled, r); return nil }))
	ctx := context.Background()
	user := func(id string) Ref { return Ref{Type: "user", ID: id} }
	for _, c := range []struct {
		name string
		do   func() error
		want error
	}{
		{"identity by a dormancy admin", func() error {
			_, err := svc.RevalidateIdentity(ctx, RevalidateRequest{Subject: user("heidi"), By: Actor{Application: "backoffice", Subject: Ref{Type: "staff", ID: "kim"}}})
			return err
		}, nil},
		{"identity by another application", func() error {
			_, err := svc.RevalidateIdentity(ctx, RevalidateRequest{Subject: user("heidi"), By: Actor{Application: "banking", Subject: user("heidi")}})
			return err
		}, ErrForbidden},
		{"identity without an actor", func() error {
			_, err := svc.RevalidateIdentity(ctx, RevalidateRequest{Subject: user("heidi"), By: Actor{Application: "backoffice"}})
			return err
		}, ErrInvalid},
		{"delegation by its principal", func() error {
			_, err := svc.ReconfirmDelegation(ctx, ReconfirmRequest{Delegation: "poa-v", By: Actor{Application: "banking", Subject: user("alice")}})
			return err
		}, nil},
		{"delegation by its agent", func() error {
			_, err := svc.ReconfirmDelegation(ctx, ReconfirmRequest{Delegation: "poa-v", By: Actor{Application: "banking", Subject: user("victor")}})
			return err
		}, ErrForbidden},
		{"delegation through an application that may not", func() error {
			_, err := svc.ReconfirmDelegation(ctx, ReconfirmRequest{Delegation: "poa-v", By: Actor{Application: "budget", Subject: user("alice")}})
			return err
		}, ErrForbidden},
		{"delegation not in force", func() error {
			_, err := svc.ReconfirmDelegation(ctx, ReconfirmRequest{Delegation: "poa-o", By: Actor{Application: "banking", Subject: user("alice")}})
			return err
		}, ErrInvalid},
		{"unknown delegation", func() error {
			_, err := svc.ReconfirmDelegation(ctx, ReconfirmRequest{Delegation: "nope", By: Actor{Application: "banking", Subject: user("alice")}})
			return err
		}, ErrNotFound},
		{"signal hook", func() error {
			_, err := svc.Revalidate(ctx, user("ivan"), "https://idp.example/ caep assurance-level-change jti-1")
			return err
		}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.do(); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	if len(journalled) != 3 || journalled[1].Kind != dormancy.KindDelegation || journalled[2].Source[:7] != "signal:" {
		t.Fatalf("journalled: %+v", journalled)
	}
	if r, ok := svc.Latest(dormancy.DelegationKey("poa-v")); !ok || r.By.Subject.ID != "alice" {
		t.Fatalf("latest of poa-v: %+v", r)
	}
}

// TestNotRecordedNotApplied: a revalidation the trail refuses is not
// stored.
func TestNotRecordedNotApplied(t *testing.T) {
	svc, path := fileSetup(t, journalFunc(func(Revalidation) error { return errors.New("disk full") }))
	_, err := svc.RevalidateIdentity(context.Background(), RevalidateRequest{Subject: Ref{Type: "user", ID: "heidi"},
		By: Actor{Application: "backoffice", Subject: Ref{Type: "staff", ID: "kim"}}})
	if !errors.Is(err, ErrNotRecorded) {
		t.Fatal(err)
	}
	if _, ok := svc.Latest("user:heidi"); ok {
		t.Fatal("indexed")
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Fatalf("stored: %s", b)
	}
}

// TestFileStoreReopen: revalidations survive a restart, in order; a torn
// last line is cut.
func TestFileStoreReopen(t *testing.T) {
	svc, path := fileSetup(t, nil)
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if _, err := svc.Revalidate(ctx, Ref{Type: "user", ID: id}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	_ = svc.c.Store.Close()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"id":"rv-torn","kind":"ident`)
	_ = f.Close()
	st, err := OpenFile(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rs, err := st.After(ctx, 0)
	if err != nil || len(rs) != 2 || rs[0].Subject.ID != "a" || rs[1].Position != 2 {
		t.Fatalf("%v %+v", err, rs)
	}
	if r, err := st.Append(ctx, Revalidation{ID: "x", Kind: dormancy.KindIdentity, Subject: Ref{Type: "user", ID: "c"}, At: testNow}); err != nil || r.Position != 3 {
		t.Fatalf("%v %+v", err, r)
	}
}

// TestReplicasAgree runs two services on one PostgreSQL database (two
// replicas): activity flushed by one is seen by the other for an identity
// that looks dormant there, and a revalidation made through one holds on
// the other at once.
func TestReplicasAgree(t *testing.T) {
	uri := os.Getenv("PDP_TEST_POSTGRES_URL")
	if uri == "" {
		t.Skip("SKIPPED: PDP_TEST_POSTGRES_URL not set: the PostgreSQL stores are not tested")
	}
	ctx := context.Background()
	sfx := fmt.Sprintf("-%d", time.Now().UnixNano())
	heidi := Ref{Type: "user", ID: "heidi" + sfx}
	replica := func() (*Service, *consent.Ledger) {
		cst, err := consent.OpenPostgres(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cst.Close() })
		if err := cst.SetActivity(ctx, consent.Ref(heidi), time.Date(2023, 1, 10, 9, 0, 0, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
		ledger := openLedger(t, cst)
		st, err := OpenPostgres(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		svc, err := NewService(ctx, Config{Store: st, Activity: LedgerActivity{ledger}, Shared: true, AdminApplications: []string{"backoffice"}})
		if err != nil {
			t.Fatal(err)
		}
		return svc, ledger
	}
	a, la := replica()
	b, _ := replica()
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, uri)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, `DELETE FROM pdp_dormancy_revalidations WHERE body->'subject'->>'id' = $1`, heidi.ID)
		_, _ = conn.Exec(ctx, `DELETE FROM pdp_consent_activity WHERE subject LIKE '%' || $1`, sfx)
	})
	q := []dormancy.Query{{Principal: heidi, Horizon: 365 * 24 * time.Hour, Now: testNow}}
	st, err := b.States(ctx, q)
	if err != nil || st[0].LastActive.Year() != 2023 || st[0].Revalidation != nil {
		t.Fatalf("before: %v %+v", err, st)
	}
	if _, err := a.RevalidateIdentity(ctx, RevalidateRequest{Subject: heidi, By: Actor{Application: "backoffice", Subject: Ref{Type: "staff", ID: "kim"}}}); err != nil {
		t.Fatal(err)
	}
	if st, err = b.States(ctx, q); err != nil || st[0].Revalidation == nil {
		t.Fatalf("revalidation through the other replica: %v %+v", err, st)
	}
	la.Touch(consent.Ref(heidi), testNow.Add(-time.Minute))
	if err := la.FlushActivity(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err = b.States(ctx, q); err != nil || !st[0].LastActive.Equal(testNow.Add(-time.Minute)) {
		t.Fatalf("activity through the other replica after a flush: %v %+v", err, st)
	}
}
