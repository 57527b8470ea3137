package adminlog

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/signalledger"
	"github.com/ciampdp/pdp/pdp/signals"
	"github.com/ciampdp/pdp/pdp/trail"
)

// trailActions lists the actions of the trail's admin records, with the
// cause of each not_applied record ("action:cause").
func trailActions(t *testing.T, l *trail.FileLog) []string {
	t.Helper()
	var out []string
	must(t, l.Scan(0, l.Size(), func(r trail.Record) error {
		var b struct {
			Action string `json:"action"`
			Detail struct {
				Cause string `json:"cause"`
			} `json:"detail"`
		}
		if json.Unmarshal(r.Body, &b) == nil && b.Action != "" {
			a := b.Action
			if strings.HasSuffix(a, ".not_applied") {
				a += ":" + b.Detail.Cause
			}
			out = append(out, a)
		}
		return nil
	}))
	return out
}

// interleaving is the recorder of replica B's journal: on B's record of
// a received SET it lets replica A receive its own copy of the jti first
// (the two replicas' receives racing between B's Sync and B's store).
type interleaving struct {
	Recorder
	first func()
}

func (r *interleaving) RecordAdmin(ctx context.Context, action, app, target string, detail any) error {
	if action == ActionSignalReceive && r.first != nil {
		first := r.first
		r.first = nil
		first()
	}
	return r.Recorder.RecordAdmin(ctx, action, app, target, detail)
}

// TestDuplicateFromAnotherReplicaNotDemanded: two replicas (two ledgers
// on one shared store) receive one jti with different events at once; A
// stores its copy, B records its copy in the shared trail and the store
// refuses it as a duplicate. B records that as not applied (cause
// "duplicate"), so the start-up check demands nothing and B starts.
func TestDuplicateFromAnotherReplicaNotDemanded(t *testing.T) {
	for _, kind := range []string{"file", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			st := openFactStores(t, kind)
			storeB := st.ss // the file store is shared in-process; PostgreSQL through a second pool
			if kind == "postgres" {
				var err error
				storeB, err = signalledger.OpenPostgres(ctx, os.Getenv("PDP_TEST_POSTGRES_URL"))
				must(t, err)
				t.Cleanup(func() { _ = storeB.Close() })
			}
			l, rec := openTrail(t)
			ja := &Journal{}
			ja.Set(rec)
			a, err := signalledger.NewLedger(ctx, signalledger.LedgerConfig{Store: st.ss, Journal: ja})
			must(t, err)
			tx := "https://risk.example/" + st.sfx
			sub := &signals.SubjectID{Format: "iss_sub", Iss: "https://idp.example/", Sub: "bob"}
			copyOf := func(types ...string) *signals.SET {
				s := &signals.SET{Issuer: tx, JTI: "jti-race", IssuedAt: day}
				for _, typ := range types {
					s.Events = append(s.Events, signals.SETEvent{Type: signals.RISCPrefix + typ, Subject: sub, Time: day})
				}
				return s
			}
			irec := &interleaving{Recorder: rec, first: func() {
				if _, err := a.Receive(ctx, copyOf("credential-compromise")); err != nil {
					t.Errorf("replica A: %v", err)
				}
			}}
			jb := &Journal{}
			jb.Set(irec)
			b, err := signalledger.NewLedger(ctx, signalledger.LedgerConfig{Store: storeB, Journal: jb})
			must(t, err)
			if _, err := b.Receive(ctx, copyOf("credential-compromise", "account-disabled")); !errors.Is(err, signalledger.ErrDuplicate) {
				t.Fatalf("replica B's receive: %v, want a duplicate", err)
			}
			want := []string{ActionSignalReceive, ActionSignalReceive, ActionSignalNotApplied + ":" + CauseDuplicate}
			if got := trailActions(t, l); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("trail %v, want %v", got, want)
			}
			rep, err := CheckStores(ctx, l, Stores{Signals: storeB})
			must(t, err)
			if len(rep.Missing) != 0 || rep.Changes != 2 {
				t.Fatalf("check on replica B: %d changes, missing %v", rep.Changes, rep.Missing)
			}
		})
	}
}

// TestAnotherReplicasCopyNotDemanded: when the not_applied record of a
// duplicate could not be written, the check still does not demand a
// SET whose jti the ledger holds in another copy: the stored events
// include a type the record lacks, or they are exactly another record's
// of the jti in the trail. A SET the ledger holds a part of is named.
func TestAnotherReplicasCopyNotDemanded(t *testing.T) {
	ctx := context.Background()
	tx := "https://risk.example/"
	tests := []struct {
		name        string
		recorded    []SignalSET // in trail order
		stored      SignalSET
		wantMissing string // the Has of the one missing SET, "" for none
	}{
		{"a superset of the stored copy, both in the trail",
			[]SignalSET{set(tx, "j", "credential-compromise"), set(tx, "j", "credential-compromise", "account-disabled")},
			set(tx, "j", "credential-compromise"), ""},
		{"another copy, the stored one not in this trail",
			[]SignalSET{set(tx, "j", "account-disabled")},
			set(tx, "j", "credential-compromise"), ""},
		{"an overlapping copy, the stored one not in this trail",
			[]SignalSET{set(tx, "j", "credential-compromise", "account-disabled")},
			set(tx, "j", "account-disabled", "sessions-revoked"), ""},
		{"a part of the SET",
			[]SignalSET{set(tx, "j", "credential-compromise", "account-disabled")},
			set(tx, "j", "credential-compromise"), "1 of its 2 events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openFactStores(t, "file")
			l, rec := openTrail(t)
			var j Journal
			j.Set(rec)
			for _, s := range tt.recorded {
				must(t, j.RecordSignal(ctx, s.Transmitter, s.JTI, s.Events))
			}
			_, err := st.ss.Append(ctx, tt.stored.Events)
			must(t, err)
			rep, err := CheckStores(ctx, l, Stores{Signals: st.ss})
			must(t, err)
			var got string
			if len(rep.Missing) == 1 {
				got = rep.Missing[0].Has
			}
			if len(rep.Missing) > 1 || got != tt.wantMissing {
				t.Fatalf("missing %+v, want %q", rep.Missing, tt.wantMissing)
			}
		})
	}
}

// TestNotAppliedWrittenAfterCancel: a not_applied record is written even
// when the caller's context is cancelled (a client that hung up): every
// kind, every time.
func TestNotAppliedWrittenAfterCancel(t *testing.T) {
	l, rec := openTrail(t)
	j := &Journal{}
	j.Set(rec)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cause := errors.New("disk full")
	const n = 20
	for range n {
		must(t, j.DelegationNotApplied(ctx, delegation.Change{Action: "delegation.revoke", Delegation: record("d-1", 2, delegation.StatusRevoked)}, cause))
		must(t, j.ConsentNotApplied(ctx, consent.Change{Action: "consent.withdraw", Application: "advisor-portal",
			Events: []consent.Event{event("e-1", "alice", consent.EventWithdrawn)}}, cause))
		must(t, j.SignalNotApplied(ctx, "https://risk.example/", "jti-1", cause))
		must(t, j.RevalidationNotApplied(ctx, reval("rv-1"), cause))
	}
	count := map[string]int{}
	must(t, l.Scan(0, l.Size(), func(r trail.Record) error {
		var b recorder.AdminBody
		if json.Unmarshal(r.Body, &b) == nil {
			count[b.Action]++
		}
		return nil
	}))
	for _, a := range []string{ActionDelegationNotApplied, ActionConsentNotApplied, ActionSignalNotApplied, ActionRevalidationNotApplied} {
		if count[a] != n {
			t.Errorf("%s: %d records of %d", a, count[a], n)
		}
	}
}

// TestInvalidSignalNamedNotRepaired: a SET whose record does not decode
// whole (a field of the wrong type, read as zero) or whose events do not
// validate as received ones (no subject for a RISC event, no event
// time) is named by the check and not stored by the repair.
func TestInvalidSignalNamedNotRepaired(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(ev map[string]any)
		want   string
	}{
		{"entity of the wrong type", func(ev map[string]any) { ev["entity"] = 7 }, "does not decode"},
		{"subject format of the wrong type", func(ev map[string]any) { ev["subject"].(map[string]any)["format"] = 7 }, "does not decode"},
		{"no subject", func(ev map[string]any) { delete(ev, "subject") }, "names no subject"},
		{"no event time", func(ev map[string]any) { delete(ev, "time") }, "no event time"},
		{"invalid subject", func(ev map[string]any) { ev["subject"] = map[string]any{"format": "email"} }, "subject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openFactStores(t, "file")
			l, rec := openTrail(t)
			s := set("https://risk.example/", "jti-bad", "credential-compromise", "account-disabled")
			raw, _ := json.Marshal(signalDetail{Transmitter: s.Transmitter, JTI: s.JTI, Events: s.Events})
			var detail map[string]any
			must(t, json.Unmarshal(raw, &detail))
			tt.change(detail["events"].([]any)[1].(map[string]any))
			must(t, rec.RecordAdmin(ctx, ActionSignalReceive, s.Transmitter, "", detail))
			rep, err := CheckStores(ctx, l, Stores{Signals: st.ss})
			must(t, err)
			if len(rep.Missing) != 1 || rep.Missing[0].Signal == nil || rep.Missing[0].Signal.JTI != "jti-bad" {
				t.Fatalf("missing %+v, want jti-bad", rep.Missing)
			}
			applied, err := RepairStores(ctx, rep, Writers{Signals: st.ss}, rec)
			if err == nil || !strings.Contains(err.Error(), "cannot be stored") || !strings.Contains(err.Error(), tt.want) || len(applied) != 0 {
				t.Fatalf("repair: applied %v, %v; want it refused (%q)", applied, err, tt.want)
			}
			if evs, _ := st.ss.Since(ctx, 0); len(evs) != 0 {
				t.Fatalf("stored %+v", evs)
			}
		})
	}
}
