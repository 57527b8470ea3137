package adminlog

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// TestImpliedRevalidationNamedAndMade: a stored SET whose record names
// the revalidation it implies, and whose revalidation the store lacks
// (a crash between the two, or a failed write), is named by the check;
// RepairStores makes it (source naming the SET, at its receive time) and
// records that it did; the check then passes and a second repair makes
// nothing. A SET whose revalidation is stored (under any id), a SET
// recorded as not applied and a SET implying nothing demand nothing; a
// SET the ledger lost is restored first, then its revalidation made.
func TestImpliedRevalidationNamedAndMade(t *testing.T) {
	for _, kind := range []string{"file", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			st, l, rec, j, tx := impliedFixture(t, kind)
			const alc = "https://schemas.openid.net/secevent/caep/event-type/assurance-level-change"
			heidi := dormancy.Ref{Type: "user", ID: "heidi"}
			aal2 := func(jti string) (SignalSET, []dormancy.SignalRevalidation) {
				s := set(tx, jti, "credential-compromise")
				s.Events[0].Type, s.Events[0].Entity = alc, `User::"heidi"`
				return s, []dormancy.SignalRevalidation{{Type: alc, Subject: heidi}}
			}
			receive := func(s SignalSET, imp []dormancy.SignalRevalidation, stored bool) {
				t.Helper()
				must(t, j.RecordSignalRevalidating(ctx, s.Transmitter, s.JTI, s.Events, imp))
				if stored {
					_, err := st.ss.Append(ctx, s.Events)
					must(t, err)
				}
			}
			lostRv, lostRvImp := aal2("jti-lost-revalidation")
			receive(lostRv, lostRvImp, true) // crashed before its revalidation
			made, madeImp := aal2("jti-made")
			receive(made, madeImp, true)
			r := ImpliedRevalidation(made.Events[0], heidi)
			r.ID = "rv-live" + st.sfx // the receive's own id
			_, err := st.rs.Append(ctx, r)
			must(t, err)
			refused, refusedImp := aal2("jti-refused")
			receive(refused, refusedImp, false)
			must(t, j.SignalNotApplied(ctx, tx, refused.JTI, errors.New("disk")))
			plain := set(tx, "jti-plain", "credential-compromise")
			receive(plain, nil, true)
			lostBoth, lostBothImp := aal2("jti-lost-both")
			receive(lostBoth, lostBothImp, false) // acknowledged, then the ledger was cut

			stores := Stores{Signals: st.ss, Revalidations: st.rs}
			rep, err := CheckStores(ctx, l, stores)
			must(t, err)
			var got []string
			for _, m := range rep.Missing {
				got = append(got, m.Kind()+" "+m.ID()+" "+m.Has)
			}
			want := []string{
				"revalidation " + ImpliedRevalidation(lostRv.Events[0], heidi).ID + " no revalidation from this signal",
				"signal jti-lost-both no event of this SET",
				"revalidation " + ImpliedRevalidation(lostBoth.Events[0], heidi).ID + " no revalidation from this signal",
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("missing:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if msg := rep.Err().Error(); !strings.Contains(msg, "signal.receive: revalidation rv-") || !strings.Contains(msg, "(user:heidi, by user:heidi") {
				t.Fatalf("the error does not name the implied revalidation:\n%s", msg)
			}

			applied, err := RepairStores(ctx, rep, Writers{Signals: st.ss, Revalidations: st.rs}, rec)
			if err != nil || len(applied) != 3 {
				t.Fatalf("RepairStores: %d applied, %v", len(applied), err)
			}
			all, err := st.rs.After(ctx, 0)
			must(t, err)
			sources := map[string]dormancy.Revalidation{}
			for _, r := range all {
				sources[r.Source] = r
			}
			for _, s := range []SignalSET{lostRv, lostBoth} {
				src := dormancy.SignalSource(tx, alc, s.JTI)
				r, ok := sources[src]
				if !ok || r.Subject != heidi || !r.At.Equal(s.Events[0].ReceivedAt) || r.By.Application != "signals" {
					t.Fatalf("the revalidation of %s after the repair: %+v (%v)", s.JTI, r, ok)
				}
			}
			if _, ok := sources[dormancy.SignalSource(tx, alc, refused.JTI)]; ok {
				t.Fatal("a revalidation made for a SET not applied")
			}
			if after, err := CheckStores(ctx, l, stores); err != nil || len(after.Missing) != 0 {
				t.Fatalf("after the repair: %v %v", after.Missing, err)
			}
			if _, err := RepairStores(ctx, rep, Writers{Signals: st.ss, Revalidations: st.rs}, nil); err != nil {
				t.Fatal(err)
			}
			if again, _ := st.rs.After(ctx, 0); len(again) != len(all) {
				t.Fatalf("a second repair made %d revalidations more", len(again)-len(all))
			}
		})
	}
}

// impliedFixture opens the fact stores of kind (the PostgreSQL
// revalidations the test makes removed at its end), a trail with its
// journal, and names a transmitter unique to the test.
func impliedFixture(t *testing.T, kind string) (factStores, *trail.FileLog, *recorder.Recorder, *Journal, string) {
	t.Helper()
	st := openFactStores(t, kind)
	if kind == "postgres" {
		t.Cleanup(func() {
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, os.Getenv("PDP_TEST_POSTGRES_URL"))
			if err != nil {
				return
			}
			defer conn.Close(ctx)
			_, _ = conn.Exec(ctx, `DELETE FROM pdp_dormancy_revalidations WHERE body->>'source' LIKE '%' || $1 || '%'`, st.sfx)
		})
	}
	l, rec := openTrail(t)
	j := &Journal{}
	j.Set(rec)
	return st, l, rec, j, "https://idp.example/" + st.sfx
}
