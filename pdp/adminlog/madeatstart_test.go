package adminlog

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// TestMakeImpliedAtStart: Report.Implied separates the revalidations
// stored SETs imply from the other missing changes; MakeImplied makes
// them (the repair's derived ids), records an ActionRepair record of
// application StartApplication, and makes nothing twice; it refuses a
// missing change that is not an implied revalidation.
func TestMakeImpliedAtStart(t *testing.T) {
	for _, kind := range []string{"file", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			st, l, rec, j, tx := impliedFixture(t, kind)
			const alc = "https://schemas.openid.net/secevent/caep/event-type/assurance-level-change"
			heidi := dormancy.Ref{Type: "user", ID: "heidi"}
			aal2 := func(jti string, stored bool) SignalSET {
				t.Helper()
				s := set(tx, jti, "credential-compromise")
				s.Events[0].Type, s.Events[0].Entity = alc, `User::"heidi"`
				must(t, j.RecordSignalRevalidating(ctx, s.Transmitter, s.JTI, s.Events, []dormancy.SignalRevalidation{{Type: alc, Subject: heidi}}))
				if stored {
					_, err := st.ss.Append(ctx, s.Events)
					must(t, err)
				}
				return s
			}
			owed := aal2("jti-owed", true)
			lost := aal2("jti-lost", false) // the ledger lost the SET: not for a start to make

			stores := Stores{Signals: st.ss, Revalidations: st.rs}
			rep, err := CheckStores(ctx, l, stores)
			must(t, err)
			implied, rest := rep.Implied()
			if len(implied) != 2 || len(rest.Missing) != 1 || rest.Missing[0].Signal == nil || rest.Missing[0].Signal.JTI != lost.JTI {
				t.Fatalf("implied %v, rest %v", implied, rest.Missing)
			}
			if _, err := MakeImplied(ctx, rest.Missing, st.rs, rec); err == nil {
				t.Fatal("MakeImplied made a missing SET")
			}
			made, err := MakeImplied(ctx, implied[:1], st.rs, rec)
			if err != nil || len(made) != 1 || made[0].ID() != ImpliedRevalidation(owed.Events[0], heidi).ID {
				t.Fatalf("MakeImplied: %v %v", made, err)
			}
			if again, err := MakeImplied(ctx, implied[:1], st.rs, nil); err != nil || len(again) != 1 {
				t.Fatalf("MakeImplied again: %v %v", again, err)
			}
			all, err := st.rs.After(ctx, 0)
			must(t, err)
			n := 0
			for _, r := range all {
				if r.Source == dormancy.SignalSource(tx, alc, owed.JTI) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%d revalidations of the owed SET, want 1", n)
			}
			var starts []string
			must(t, l.Scan(0, l.Size(), func(r trail.Record) error {
				var b recorder.AdminBody
				if json.Unmarshal(r.Body, &b) == nil && b.Action == ActionRepair {
					if b.Application != StartApplication {
						t.Errorf("repair record of application %q, want %q", b.Application, StartApplication)
					}
					raw, _ := json.Marshal(b.Detail)
					starts = append(starts, string(raw))
				}
				return nil
			}))
			if len(starts) != 1 || !strings.Contains(starts[0], `"kind":"revalidation"`) {
				t.Fatalf("start records: %v", starts)
			}
		})
	}
}
