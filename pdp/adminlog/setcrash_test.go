package adminlog

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/signalledger"
	"github.com/ciampdp/pdp/pdp/signals"
)

var _ SignalCompleter = (*signalledger.FileStore)(nil)

// TestRepairCompletesOnlyThisReceivesPart: the trail holds a SET of three
// events and the ledger a part of its jti. The repair appends the rest
// only when the ledger is a file (a SignalCompleter) and its part is the
// SET's first events as this receive stamped them (a file of the older
// format cut by a crash); another receive's copy (another received_at),
// events out of order, or a PostgreSQL store (one transaction: a part
// there is a deleted row) is refused and stays named.
func TestRepairCompletesOnlyThisReceivesPart(t *testing.T) {
	tx := "https://risk.example/"
	tests := []struct {
		name   string
		kind   string
		stored func(s SignalSET) []signals.Event // the ledger's part, stored as SETs of one event
		refuse string                            // "" when the repair completes the SET
	}{
		{"the first event of this receive", "file", func(s SignalSET) []signals.Event { return s.Events[:1] }, ""},
		{"the first two events of this receive", "file", func(s SignalSET) []signals.Event { return s.Events[:2] }, ""},
		{"another receive's copy", "file", func(s SignalSET) []signals.Event {
			e := s.Events[0]
			e.ReceivedAt = e.ReceivedAt.Add(time.Minute)
			return []signals.Event{e}
		}, "not the first ones of this receive"},
		{"not the first event", "file", func(s SignalSET) []signals.Event { return s.Events[1:2] }, "not the first ones of this receive"},
		{"PostgreSQL", "postgres", func(s SignalSET) []signals.Event { return s.Events[:1] }, "restore it from a backup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st := openFactStores(t, tt.kind)
			l, rec := openTrail(t)
			var j Journal
			j.Set(rec)
			s := set(tx+st.sfx, "jti-three", "credential-compromise", "account-disabled", "sessions-revoked")
			must(t, j.RecordSignal(ctx, s.Transmitter, s.JTI, s.Events))
			for i, e := range tt.stored(s) {
				if i == 0 {
					_, err := st.ss.Append(ctx, []signals.Event{e})
					must(t, err)
				} else {
					_, err := st.ss.(SignalCompleter).Complete(ctx, []signals.Event{e})
					must(t, err)
				}
			}
			rep, err := CheckStores(ctx, l, Stores{Signals: st.ss})
			must(t, err)
			if len(rep.Missing) != 1 || !strings.HasSuffix(rep.Missing[0].Has, "of its 3 events") {
				t.Fatalf("missing %+v, want the SET named", rep.Missing)
			}
			_, err = RepairStores(ctx, rep, Writers{Signals: st.ss}, rec)
			if tt.refuse != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refuse) {
					t.Fatalf("repair: %v, want refused (%s)", err, tt.refuse)
				}
				if rep, err := CheckStores(ctx, l, Stores{Signals: st.ss}); err != nil || len(rep.Missing) != 1 {
					t.Fatalf("check after the refusal: missing %+v, %v; want it still named", rep.Missing, err)
				}
				return
			}
			must(t, err)
			must(t, st.ss.Close())
			ss, err := signalledger.OpenFile(filepath.Join(st.dir, "signals.jsonl"), nil)
			must(t, err)
			t.Cleanup(func() { _ = ss.Close() })
			if rep, err := CheckStores(ctx, l, Stores{Signals: ss}); err != nil || len(rep.Missing) != 0 {
				t.Fatalf("check after the repair and a reopen: missing %+v, %v", rep.Missing, err)
			}
			evs, err := ss.Since(ctx, 0)
			must(t, err)
			if len(evs) != 3 {
				t.Fatalf("the ledger holds %d events after the repair, want 3", len(evs))
			}
			for i, e := range evs {
				if e.Type != s.Events[i].Type || !e.ReceivedAt.Equal(s.Events[i].ReceivedAt) {
					t.Fatalf("event %d: %s received %s, want %s received %s", i, e.Type, e.ReceivedAt, s.Events[i].Type, s.Events[i].ReceivedAt)
				}
			}
		})
	}
}
