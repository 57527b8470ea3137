package adminlog

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/revalidation"
	"github.com/ciampdp/pdp/pdp/signalledger"
	"github.com/ciampdp/pdp/pdp/signals"
	"github.com/ciampdp/pdp/pdp/trail"
)

// factStores is a signal store and a revalidation store of one kind.
type factStores struct {
	ss  signalledger.Store
	rs  revalidation.Store
	sfx string // transmitters and revalidation ids end with it (shared PostgreSQL tables)
	dir string // the files' folder (file stores)
}

// openFactStores opens file stores in a temporary folder, or PostgreSQL
// stores (skipped without PDP_TEST_POSTGRES_URL; rows removed at cleanup).
func openFactStores(t testing.TB, kind string) factStores {
	t.Helper()
	ctx := context.Background()
	if kind == "file" {
		dir := t.TempDir()
		ss, err := signalledger.OpenFile(filepath.Join(dir, "signals.jsonl"), nil)
		mustTB(t, err)
		rs, err := revalidation.OpenFile(filepath.Join(dir, "revalidations.jsonl"), nil)
		mustTB(t, err)
		t.Cleanup(func() { _ = ss.Close(); _ = rs.Close() })
		return factStores{ss: ss, rs: rs, dir: dir}
	}
	uri := os.Getenv("PDP_TEST_POSTGRES_URL")
	if uri == "" {
		t.Skip("SKIPPED: PDP_TEST_POSTGRES_URL not set: the PostgreSQL stores are not tested")
	}
	ss, err := signalledger.OpenPostgres(ctx, uri)
	mustTB(t, err)
	rs, err := revalidation.OpenPostgres(ctx, uri)
	mustTB(t, err)
	sfx := "-" + strings.ReplaceAll(t.Name(), "/", "-") + time.Now().Format("150405.000000000")
	t.Cleanup(func() {
		_ = ss.Close()
		_ = rs.Close()
		conn, err := pgx.Connect(ctx, uri)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer conn.Close(ctx)
		for _, q := range []string{
			"DELETE FROM pdp_signal_events WHERE transmitter LIKE '%' || $1",
			"DELETE FROM pdp_dormancy_revalidations WHERE id LIKE '%' || $1",
		} {
			if _, err := conn.Exec(ctx, q, sfx); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return factStores{ss: ss, rs: rs, sfx: sfx}
}

func mustTB(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// set is a SET of the given event types about bob, as the ledger stores it.
func set(transmitter, jti string, types ...string) SignalSET {
	s := SignalSET{Transmitter: transmitter, JTI: jti}
	for _, typ := range types {
		s.Events = append(s.Events, signals.Event{Transmitter: transmitter, JTI: jti, Type: signals.RISCPrefix + typ,
			Time: day, IssuedAt: day, ReceivedAt: day.Add(time.Second), Entity: `User::"bob"`,
			Subject: &signals.SubjectID{Format: "iss_sub", Iss: "https://idp.example/", Sub: "bob"}})
	}
	return s
}

func reval(id string) dormancy.Revalidation {
	return dormancy.Revalidation{ID: id, Kind: dormancy.KindIdentity, Subject: dormancy.Ref{Type: "user", ID: "heidi"}, At: day,
		By: dormancy.Actor{Application: "backoffice", Subject: dormancy.Ref{Type: "staff", ID: "kim"}}, Source: "admin"}
}

// TestCheckAndRepairSignalsAndRevalidations: received SETs and
// revalidations journalled and stored pass the check; those a store lacks
// are named (kind, id, trail seq), unless recorded as not applied (a SET
// sent again after a failed store is demanded again); RepairStores
// appends them with their times, records that it did, and the check
// passes.
func TestCheckAndRepairSignalsAndRevalidations(t *testing.T) {
	for _, kind := range []string{"file", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			st := openFactStores(t, kind)
			l, rec := openTrail(t)
			var j Journal
			j.Set(rec)
			tx := "https://risk.example/" + st.sfx
			store := func(s SignalSET) {
				t.Helper()
				_, err := st.ss.Append(ctx, s.Events)
				must(t, err)
			}
			receive := func(s SignalSET) { t.Helper(); must(t, j.RecordSignal(ctx, s.Transmitter, s.JTI, s.Events)) }

			stored, lost, refused := set(tx, "jti-stored", "credential-compromise"), set(tx, "jti-lost", "credential-compromise", "account-disabled"), set(tx, "jti-refused", "account-disabled")
			again := set(tx, "jti-again", "credential-compromise")
			receive(stored)
			store(stored)
			receive(lost) // acknowledged, then the store was cut
			receive(refused)
			must(t, j.SignalNotApplied(ctx, tx, refused.JTI, errors.New("disk")))
			receive(again) // not applied the first time, sent again, acknowledged
			must(t, j.SignalNotApplied(ctx, tx, again.JTI, errors.New("disk")))
			receive(again)

			r1, r2, r3 := reval("rv-stored"+st.sfx), reval("rv-lost"+st.sfx), reval("rv-refused"+st.sfx)
			must(t, j.RecordRevalidation(ctx, r1))
			_, err := st.rs.Append(ctx, r1)
			must(t, err)
			r2.Kind, r2.Delegation = dormancy.KindDelegation, "poa-alice-victor"
			must(t, j.RecordRevalidation(ctx, r2))
			must(t, j.RecordRevalidation(ctx, r3))
			must(t, j.RevalidationNotApplied(ctx, r3, errors.New("disk")))

			stores := Stores{Signals: st.ss, Revalidations: st.rs}
			rep, err := CheckStores(ctx, l, stores)
			must(t, err)
			var got []string
			for _, m := range rep.Missing {
				got = append(got, m.Kind()+" "+m.Action+" "+m.ID()+" "+m.Has)
			}
			want := []string{
				"signal signal.receive jti-lost no event of this SET",
				"signal signal.receive jti-again no event of this SET",
				"revalidation dormancy.reconfirm " + r2.ID + " no such revalidation",
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("missing:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if rep.Changes != 8 {
				t.Fatalf("%d changes counted, want 8", rep.Changes)
			}
			msg := rep.Err().Error()
			for _, w := range []string{"signal.receive: signal jti-lost from " + tx + " (credential-compromise of User::\"bob\", account-disabled of User::\"bob\"", "at trail seq 1",
				"dormancy.reconfirm: revalidation " + r2.ID + " (delegation:poa-alice-victor, by staff:kim"} {
				if !strings.Contains(msg, w) {
					t.Fatalf("the error lacks %q:\n%s", w, msg)
				}
			}

			applied, err := RepairStores(ctx, rep, Writers{Signals: st.ss, Revalidations: st.rs}, rec)
			if err != nil || len(applied) != 3 {
				t.Fatalf("RepairStores: %d applied, %v", len(applied), err)
			}
			evs, err := st.ss.Since(ctx, 0)
			must(t, err)
			var back []signals.Event
			for _, e := range evs {
				if e.Transmitter == tx && e.JTI == lost.JTI {
					back = append(back, e)
				}
			}
			if len(back) != 2 || !back[0].Time.Equal(day) || !back[0].ReceivedAt.Equal(day.Add(time.Second)) || back[0].Subject == nil || back[0].Subject.Sub != "bob" {
				t.Fatalf("the lost SET after the repair: %+v", back)
			}
			again2, err := CheckStores(ctx, l, stores)
			if err != nil || len(again2.Missing) != 0 {
				t.Fatalf("after the repair: %v, %v", again2.Missing, err)
			}
			// Run again: nothing is applied twice.
			if applied, err := RepairStores(ctx, rep, Writers{Signals: st.ss, Revalidations: st.rs}, nil); err != nil || len(applied) != 3 {
				t.Fatalf("a second repair: %d, %v", len(applied), err)
			}
			if evs2, _ := st.ss.Since(ctx, 0); len(evs2) != len(evs) {
				t.Fatalf("a second repair appended again: %d events, then %d", len(evs), len(evs2))
			}
			var repairs []string
			must(t, l.Scan(0, l.Size(), func(r trail.Record) error {
				var b recorder.AdminBody
				if json.Unmarshal(r.Body, &b) == nil && b.Action == ActionRepair {
					raw, _ := json.Marshal(b.Detail)
					repairs = append(repairs, string(raw))
				}
				return nil
			}))
			if len(repairs) != 1 || !strings.Contains(repairs[0], `"id":"jti-lost","kind":"signal","seq":1,"transmitter":"`+tx+`"`) ||
				!strings.Contains(repairs[0], `"id":"`+r2.ID+`","kind":"revalidation","seq":8`) {
				t.Fatalf("repair records: %v", repairs)
			}
		})
	}
}

// TestPartialSETIsNamedAndCompleted: a ledger file of the older format
// (a SET's lines not numbered) cut in the middle of a SET keeps part of
// its events; the check names the SET with what the ledger has, and the
// repair appends the rest from the trail (setcrash_test.go: the copies it
// refuses).
func TestPartialSETIsNamedAndCompleted(t *testing.T) {
	ctx := context.Background()
	st := openFactStores(t, "file")
	l, rec := openTrail(t)
	var j Journal
	j.Set(rec)
	s := set("https://risk.example/", "jti-two", "credential-compromise", "account-disabled")
	must(t, j.RecordSignal(ctx, s.Transmitter, s.JTI, s.Events))
	_, err := st.ss.Append(ctx, s.Events)
	must(t, err)
	must(t, st.ss.Close())
	path := filepath.Join(st.dir, "signals.jsonl")
	data, err := os.ReadFile(path)
	must(t, err)
	lines := strings.SplitAfter(string(data), "\n")
	must(t, os.WriteFile(path, []byte(strings.Replace(lines[0], `,"set_event":1,"set_events":2`, "", 1)), 0o600))
	ss, err := signalledger.OpenFile(path, nil)
	must(t, err)
	t.Cleanup(func() { _ = ss.Close() })

	rep, err := CheckStores(ctx, l, Stores{Signals: ss})
	must(t, err)
	if len(rep.Missing) != 1 || rep.Missing[0].Has != "1 of its 2 events" {
		t.Fatalf("missing %+v", rep.Missing)
	}
	if _, err := RepairStores(ctx, rep, Writers{Signals: ss}, rec); err != nil {
		t.Fatalf("repair of a partial SET: %v", err)
	}
	if rep, err := CheckStores(ctx, l, Stores{Signals: ss}); err != nil || len(rep.Missing) != 0 {
		t.Fatalf("check after the repair: missing %+v, %v", rep.Missing, err)
	}
}

// TestRedactedSignalNamedNotRepaired: a SET the trail holds with its
// subject redacted is named missing, and not repaired from the trail.
func TestRedactedSignalNamedNotRepaired(t *testing.T) {
	ctx := context.Background()
	st := openFactStores(t, "file")
	l, rec := openTrail(t)
	s := set("https://risk.example/", "jti-r", "credential-compromise")
	raw, _ := json.Marshal(signalDetail{Transmitter: s.Transmitter, JTI: s.JTI, Events: s.Events})
	var detail map[string]any
	must(t, json.Unmarshal(raw, &detail))
	detail["events"].([]any)[0].(map[string]any)["subject"] = map[string]any{"$redacted": "hmac-sha256", "value": "x"}
	must(t, rec.RecordAdmin(ctx, ActionSignalReceive, s.Transmitter, "", detail))
	rep, err := CheckStores(ctx, l, Stores{Signals: st.ss})
	must(t, err)
	if len(rep.Missing) != 1 || !rep.Missing[0].Redacted {
		t.Fatalf("missing %+v, want the redacted SET", rep.Missing)
	}
	if _, err := RepairStores(ctx, rep, Writers{Signals: st.ss}, rec); err == nil || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("repair of a redacted SET: %v", err)
	}
	if evs, _ := st.ss.Since(ctx, 0); len(evs) != 0 {
		t.Fatalf("the redacted SET was stored: %+v", evs)
	}
}

// TestStoreFailureRecordedNotApplied: when the signal ledger's or the
// revalidations' store fails after the record, the ledger and the service
// record it as not applied, and the check then does not demand it.
func TestStoreFailureRecordedNotApplied(t *testing.T) {
	ctx := context.Background()
	st := openFactStores(t, "file")
	l, rec := openTrail(t)
	j := &Journal{}
	j.Set(rec)
	ledger, err := signalledger.NewLedger(ctx, signalledger.LedgerConfig{Store: st.ss, Journal: j})
	must(t, err)
	svc, err := revalidation.NewService(ctx, revalidation.Config{Store: st.rs, Journal: j, AdminApplications: []string{"backoffice"}})
	must(t, err)
	must(t, st.ss.Close()) // every append fails from now on
	must(t, st.rs.Close())

	sub := &signals.SubjectID{Format: "iss_sub", Iss: "https://idp.example/", Sub: "bob"}
	if _, err := ledger.Receive(ctx, &signals.SET{Issuer: "https://risk.example/", JTI: "jti-x", IssuedAt: day,
		Events: []signals.SETEvent{{Type: signals.RISCPrefix + "credential-compromise", Subject: sub, Time: day}}}); err == nil {
		t.Fatal("Receive on a closed store succeeded")
	}
	if _, err := svc.RevalidateIdentity(ctx, revalidation.RevalidateRequest{Subject: dormancy.Ref{Type: "user", ID: "heidi"},
		By: dormancy.Actor{Application: "backoffice", Subject: dormancy.Ref{Type: "staff", ID: "kim"}}}); err == nil {
		t.Fatal("RevalidateIdentity on a closed store succeeded")
	}
	var actions []string
	must(t, l.Scan(0, l.Size(), func(r trail.Record) error {
		var b recorder.AdminBody
		if json.Unmarshal(r.Body, &b) == nil {
			actions = append(actions, b.Action)
		}
		return nil
	}))
	want := []string{ActionSignalReceive, ActionSignalNotApplied, ActionRevalidate, ActionRevalidationNotApplied}
	if strings.Join(actions, " ") != strings.Join(want, " ") {
		t.Fatalf("trail actions %v, want %v", actions, want)
	}
	ss, err := signalledger.OpenFile(filepath.Join(st.dir, "signals.jsonl"), nil)
	must(t, err)
	defer ss.Close()
	rs, err := revalidation.OpenFile(filepath.Join(st.dir, "revalidations.jsonl"), nil)
	must(t, err)
	defer rs.Close()
	rep, err := CheckStores(ctx, l, Stores{Signals: ss, Revalidations: rs})
	if err != nil || len(rep.Missing) != 0 || rep.Changes != 2 {
		t.Fatalf("check after failed stores: %d changes, missing %v, %v", rep.Changes, rep.Missing, err)
	}
}
