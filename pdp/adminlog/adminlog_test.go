package adminlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// stores is a delegation store and a consent store of one kind.
type stores struct {
	ds  delegation.Store
	cs  consent.Store
	sfx string // ids and subjects end with it (shared PostgreSQL tables)
}

// openStores opens file stores in a temporary folder, or PostgreSQL stores
// (skipped without PDP_TEST_POSTGRES_URL; rows removed at cleanup).
func openStores(t *testing.T, kind string) stores {
	t.Helper()
	ctx := context.Background()
	if kind == "file" {
		dir := t.TempDir()
		ds, err := delegation.OpenFile(filepath.Join(dir, "d.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		cs, err := consent.OpenFile(filepath.Join(dir, "c.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ds.Close(); _ = cs.Close() })
		return stores{ds: ds, cs: cs}
	}
	uri := os.Getenv("PDP_TEST_POSTGRES_URL")
	if uri == "" {
		t.Skip("SKIPPED: PDP_TEST_POSTGRES_URL not set: the PostgreSQL stores are not tested")
	}
	ds, err := delegation.OpenPostgres(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := consent.OpenPostgres(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	sfx := "-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		_ = ds.Close()
		_ = cs.Close()
		conn, err := pgx.Connect(ctx, uri)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer conn.Close(ctx)
		for _, q := range []string{
			"DELETE FROM pdp_delegations WHERE id LIKE '%' || $1",
			"DELETE FROM pdp_delegation_events WHERE id LIKE '%' || $1",
			"DELETE FROM pdp_consent_events WHERE subject LIKE '%' || $1",
		} {
			if _, err := conn.Exec(ctx, q, sfx); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return stores{ds: ds, cs: cs, sfx: sfx}
}

// openTrail is a real trail and its recorder.
func openTrail(t *testing.T) (*trail.FileLog, *recorder.Recorder) {
	t.Helper()
	l, err := trail.OpenFile(filepath.Join(t.TempDir(), "trail"), trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	rec, err := recorder.NewRecorder(nil, l, recorder.RecorderOptions{Instance: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return l, rec
}

var day = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func record(id string, version int, status delegation.Status) delegation.Delegation {
	by := delegation.Actor{Application: "mobile-banking", Subject: delegation.Ref{Type: "user", ID: "alice"}}
	d := delegation.Delegation{
		ID: id, Principal: by.Subject, Agent: delegation.Ref{Type: "user", ID: "bob"},
		Basis: delegation.BasisPowerOfAttorney, Source: delegation.SourceSelfDeclared, Scope: []string{"view_statements"},
		ValidFrom: day, ValidUntil: day.AddDate(2, 0, 0), Status: status, CreatedBy: by, CreatedAt: day, Version: version,
	}
	for v := 1; v <= version; v++ {
		st := delegation.StatusActive
		if v == version {
			st = status
		}
		d.History = append(d.History, delegation.Event{Seq: v, Type: "e", At: day, By: by, Status: st})
	}
	return d
}

func event(id, subject string, typ consent.EventType) consent.Event {
	ref := consent.Ref{Type: "user", ID: subject}
	return consent.Event{ID: id, Type: typ, Subject: ref, Actor: ref, Application: "advisor-portal",
		Purpose: "financial_advice", PurposeVersion: 1, At: day, RecordedAt: day}
}

// TestCheckAndRepair: changes journalled and applied pass the check;
// journalled changes a store lacks are named (with their trail seq), in
// trail order, unless recorded as not applied; records written before the
// journal (the record or event itself as detail) count as well; Repair
// applies what is missing, records that it did, and the check passes.
func TestCheckAndRepair(t *testing.T) {
	for _, kind := range []string{"file", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			st := openStores(t, kind)
			l, rec := openTrail(t)
			var j Journal
			j.Set(rec)
			by := delegation.Actor{Application: "mobile-banking", Subject: delegation.Ref{Type: "user", ID: "alice"}}
			dlg := func(id string) string { return id + st.sfx }
			subj := "alice" + st.sfx

			// Applied: offer and accept of dlg-a; recorded, not applied: its revoke.
			a1, a2, a3 := record(dlg("dlg-a"), 1, delegation.StatusOffered), record(dlg("dlg-a"), 2, delegation.StatusActive), record(dlg("dlg-a"), 3, delegation.StatusRevoked)
			must(t, j.RecordDelegation(ctx, delegation.Change{Action: "delegation.offer", By: by, Delegation: a1}))
			must(t, st.ds.Create(ctx, a1))
			must(t, j.RecordDelegation(ctx, delegation.Change{Action: "delegation.accept", By: by, Delegation: a2}))
			must(t, st.ds.Update(ctx, a2, 1))
			must(t, j.RecordDelegation(ctx, delegation.Change{Action: "delegation.revoke", By: by, Delegation: a3}))
			// dlg-b: recorded and said not applied.
			b1 := record(dlg("dlg-b"), 1, delegation.StatusOffered)
			must(t, j.RecordDelegation(ctx, delegation.Change{Action: "delegation.offer", By: by, Delegation: b1}))
			must(t, j.DelegationNotApplied(ctx, delegation.Change{Action: "delegation.offer", By: by, Delegation: b1}, errors.New("disk")))
			// dlg-c: an offer recorded before the journal (detail: the record).
			c1 := record(dlg("dlg-c"), 1, delegation.StatusActive)
			must(t, rec.RecordAdmin(ctx, "delegation.offer", "mobile-banking", c1.ID, c1))

			// Consent: a give applied, a withdrawal of two events of which
			// one was appended, a give not applied, an old-style event.
			g := event("cev-g"+st.sfx, subj, consent.EventGiven)
			must(t, j.RecordConsent(ctx, consent.Change{Action: "consent.give", Application: "advisor-portal", Events: []consent.Event{g}}))
			_, err := st.cs.Append(ctx, g)
			must(t, err)
			w1, w2 := event("cev-w1"+st.sfx, subj, consent.EventWithdrawn), event("cev-w2"+st.sfx, subj, consent.EventWithdrawn)
			must(t, j.RecordConsent(ctx, consent.Change{Action: "consent.withdraw", Application: "advisor-portal", Events: []consent.Event{w1, w2}}))
			_, err = st.cs.Append(ctx, w1)
			must(t, err)
			n := event("cev-n"+st.sfx, subj, consent.EventGiven)
			must(t, j.RecordConsent(ctx, consent.Change{Action: "consent.give", Application: "advisor-portal", Events: []consent.Event{n}}))
			must(t, j.ConsentNotApplied(ctx, consent.Change{Action: "consent.give", Application: "advisor-portal", Events: []consent.Event{n}}, errors.New("disk")))
			old := event("cev-old"+st.sfx, subj, consent.EventRefused)
			must(t, rec.RecordAdmin(ctx, "consent.refuse", "advisor-portal", subj, old))

			rep, err := Check(ctx, l, st.ds, st.cs)
			must(t, err)
			var got []string
			for _, m := range rep.Missing {
				got = append(got, m.Action+" "+m.ID()+" "+m.Has)
			}
			want := []string{
				"delegation.revoke " + a3.ID + " version 2 (active)",
				"delegation.offer " + c1.ID + " no such record",
				"consent.withdraw " + w2.ID + " no such event",
				"consent.refuse " + old.ID + " no such event",
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("missing:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			// The same through readers of one record or event at a time.
			one, err := Check(ctx, l, getOnly{st.ds}, eventOnly{st.cs})
			must(t, err)
			if len(one.Missing) != len(rep.Missing) {
				t.Fatalf("one at a time: %d missing, in one pass: %d", len(one.Missing), len(rep.Missing))
			}
			for i := range one.Missing {
				if one.Missing[i].String() != rep.Missing[i].String() {
					t.Fatalf("one at a time: %s\nin one pass: %s", one.Missing[i], rep.Missing[i])
				}
			}
			if rep.Missing[0].Seq != 2 || !errors.Is(rep.Err(), ErrMissing) || !strings.Contains(rep.Err().Error(), "at trail seq 2") {
				t.Fatalf("first missing at seq %d; Err: %v", rep.Missing[0].Seq, rep.Err())
			}

			applied, err := Repair(ctx, rep, st.ds, st.cs, rec)
			if err != nil || len(applied) != 4 {
				t.Fatalf("Repair: %d applied, %v", len(applied), err)
			}
			if d, err := st.ds.Get(ctx, a3.ID); err != nil || d.Status != delegation.StatusRevoked || d.Version != 3 {
				t.Fatalf("dlg-a after the repair: %v %v", d.Status, err)
			}
			if e, err := st.cs.Event(ctx, w2.ID); err != nil || !e.RecordedAt.Equal(day) {
				t.Fatalf("w2 after the repair: %+v %v", e, err)
			}
			again, err := Check(ctx, l, st.ds, st.cs)
			if err != nil || len(again.Missing) != 0 {
				t.Fatalf("after the repair: %v, %v", again.Missing, err)
			}
			var repairs int
			must(t, l.Scan(0, l.Size(), func(r trail.Record) error {
				var b recorder.AdminBody
				if json.Unmarshal(r.Body, &b) == nil && b.Action == ActionRepair {
					repairs++
				}
				return nil
			}))
			if repairs != 1 {
				t.Fatalf("%d repair records in the trail, want 1", repairs)
			}
		})
	}
}

// TestRedactedChangesAreNamedNotRepaired: a change the trail holds with
// redacted values is still found missing, and Repair refuses to apply it.
func TestRedactedChangesAreNamedNotRepaired(t *testing.T) {
	ctx := context.Background()
	st := openStores(t, "file")
	l, rec := openTrail(t)
	ev := event("cev-r", "alice", consent.EventWithdrawn)
	raw, _ := json.Marshal(consentDetail{Events: []consent.Event{ev}})
	var detail map[string]any
	must(t, json.Unmarshal(raw, &detail))
	detail["events"].([]any)[0].(map[string]any)["subject"] = map[string]any{"$redacted": "hmac-sha256", "value": "x"}
	must(t, rec.RecordAdmin(ctx, "consent.withdraw", "advisor-portal", "", detail))
	rep, err := Check(ctx, l, st.ds, st.cs)
	must(t, err)
	if len(rep.Missing) != 1 || !rep.Missing[0].Redacted {
		t.Fatalf("missing %+v, want the redacted withdrawal", rep.Missing)
	}
	if _, err := Repair(ctx, rep, st.ds, st.cs, rec); err == nil || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("Repair of a redacted change: %v", err)
	}
}

// getOnly and eventOnly hide the one-pass readers of the stores.
type (
	getOnly   struct{ Delegations }
	eventOnly struct{ Events }
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
