package delegation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestReadersSeeWhatTheyTookPartIn: each kind of reader against each kind
// of delegation, through GetFor and ListFor; a record a reader may not see
// is not found with the very error of an id that does not exist, and
// lists leave it out.
func TestReadersSeeWhatTheyTookPartIn(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newEnv(t, st, sfx)
		e.svc = NewService(Config{
			Store: st, Projector: e.proj, Now: e.clock.Now,
			NewID:                func() string { return fmt.Sprintf("dlg-%d%s", e.ids.Add(1), sfx) },
			RegisterApplications: []string{register.Application},
			ReaderApplications:   []string{"backoffice"},
		})
		ctx := context.Background()
		alice, bob, carol, dave, erin, frank := e.user("alice"), e.user("bob"), e.user("carol"), e.user("dave"), e.user("erin"), e.user("frank")
		via := func(app string, r Ref) Actor { return Actor{Application: app, Subject: r} }

		// alice's power of attorney to bob, offered and accepted through
		// mobile-banking.
		poa := e.poa(alice, bob, []string{"*"}, 1)
		// offered through mobile-banking, accepted through agent-app: both
		// took part.
		accepted := e.offer(OfferRequest{By: as(alice), Principal: alice, Agent: frank, Basis: BasisPowerOfAttorney,
			Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2030, 1, 1)})
		if _, _, err := e.svc.Accept(ctx, accepted.ID, via("agent-app", frank)); err != nil {
			t.Fatal(err)
		}
		// bob sub-delegates through agent-app: mobile-banking took part in
		// the parent only.
		sub := e.offer(OfferRequest{By: via("agent-app", bob), Principal: alice, Agent: erin, Basis: BasisSubDelegation,
			Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2030, 1, 1), Parent: poa.ID})
		// carol's guardian, from the register.
		guardian := e.offer(OfferRequest{By: register, Principal: carol, Agent: dave, Basis: BasisStatutoryGuardian,
			Source: SourceRegister, Scope: []string{"*"}, ValidUntil: date(2029, 6, 15)})
		// imported with its history (a seed): made by an application this
		// PDP does not know.
		imported := poa.Clone()
		imported.ID, imported.Agent = "imported"+sfx, dave
		imported.CreatedBy = via("old-system", alice)
		for i := range imported.History {
			imported.History[i].By.Application = "old-system"
		}
		if err := e.svc.Import(ctx, []Delegation{imported}); err != nil {
			t.Fatal(err)
		}

		readers := []struct {
			name string
			r    Reader
			sees []string
		}{
			{"the application that offered and accepted", Reader{Application: "mobile-banking"}, []string{poa.ID, accepted.ID}},
			{"an application that accepted or offered a sub-delegation", Reader{Application: "agent-app"}, []string{accepted.ID, sub.ID}},
			{"an administrator that took part in none", Reader{Application: "advisor-portal"}, nil},
			{"a register application", Reader{Application: register.Application}, []string{guardian.ID}},
			{"a whole-view reader (delegations.reader_applications)", Reader{Application: "backoffice"},
				[]string{poa.ID, accepted.ID, sub.ID, guardian.ID, imported.ID}},
			{"the whole view by the caller's word (authentication off)", Reader{Application: "local", Whole: true},
				[]string{poa.ID, accepted.ID, sub.ID, guardian.ID, imported.ID}},
			{"the application of an imported record", Reader{Application: "old-system"}, []string{imported.ID}},
			{"no application", Reader{}, nil},
		}
		all := []string{poa.ID, accepted.ID, sub.ID, guardian.ID, imported.ID}
		for _, rd := range readers {
			t.Run(rd.name, func(t *testing.T) {
				for _, id := range all {
					want := slices.Contains(rd.sees, id)
					d, err := e.svc.GetFor(ctx, id, rd.r)
					switch {
					case want && (err != nil || d.ID != id):
						t.Errorf("GetFor(%s): %v, want the record", id, err)
					case !want:
						_, missing := e.svc.GetFor(ctx, id+"-missing", Reader{Whole: true})
						if !errors.Is(err, ErrNotFound) || err.Error() != "delegation "+id+": delegation not found" ||
							missing.Error() != "delegation "+id+"-missing: delegation not found" {
							t.Errorf("GetFor(%s): %v, want the error of a missing id (%v)", id, err, missing)
						}
					}
					if got := e.svc.Sees(rd.r, e.get(id)); got != want {
						t.Errorf("Sees(%s) = %v, want %v", id, got, want)
					}
				}
				for _, f := range []struct {
					name string
					f    Filter
				}{{"principal alice", Filter{Principal: &alice}}, {"principal carol", Filter{Principal: &carol}},
					{"agent dave", Filter{Agent: &dave}}, {"parent", Filter{Parent: poa.ID}}} {
					every, err := e.svc.List(ctx, f.f)
					if err != nil {
						t.Fatal(err)
					}
					var want []string
					for _, d := range every {
						if slices.Contains(rd.sees, d.ID) {
							want = append(want, d.ID)
						}
					}
					got, err := e.svc.ListFor(ctx, f.f, rd.r)
					if err != nil {
						t.Fatal(err)
					}
					var ids []string
					for _, d := range got {
						ids = append(ids, d.ID)
					}
					if !slices.Equal(ids, want) {
						t.Errorf("ListFor(%s) = %v, want %v", f.name, ids, want)
					}
				}
			})
		}

		// A change makes its application a party: advisor-portal revokes
		// (as alice, the principal) and from then on reads the record.
		if _, _, err := e.svc.Revoke(ctx, accepted.ID, via("advisor-portal", alice), "t"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.GetFor(ctx, accepted.ID, Reader{Application: "advisor-portal"}); err != nil {
			t.Fatalf("after its revoke: %v", err)
		}
	})
}

// TestChangesKeepTheirAuthority: reads are scoped, changes are not
// widened nor narrowed by it: an application that cannot read a record is
// refused a change its actor may not make — as an unknown id when the
// actor takes no part in the record (Service.Hides; see
// TestChangesAnswerUnseenRecordsAsUnknown) — and makes one its actor may.
func TestChangesKeepTheirAuthority(t *testing.T) {
	st, sfx := openFileT(t)
	e := newEnv(t, st, sfx)
	ctx := context.Background()
	alice, bob, mallory := e.user("alice"), e.user("bob"), e.user("mallory")
	poa := e.poa(alice, bob, []string{"*"}, 0)
	other := func(r Ref) Actor { return Actor{Application: "advisor-portal", Subject: r} }
	if e.svc.Sees(Reader{Application: "advisor-portal"}, poa) {
		t.Fatal("advisor-portal sees a record it took no part in")
	}
	if _, _, err := e.svc.Suspend(ctx, poa.ID, other(mallory), "t"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("suspend by mallory: %v, want not found", err)
	}
	if _, _, err := e.svc.Suspend(ctx, poa.ID, other(alice), "t"); err != nil {
		t.Fatalf("suspend by the principal: %v", err)
	}
}

// TestRefusedSubDelegationNamesNoUnseenAgent: an offer by a stranger under
// a parent the calling application may not read is refused as under a
// parent that does not exist (422; see TestOfferUnderUnseenParentAsMissing),
// naming nothing of it; through an application that reads the parent the
// refusal is 403 and names its agent, as it always did.
func TestRefusedSubDelegationNamesNoUnseenAgent(t *testing.T) {
	st, sfx := openFileT(t)
	e := newEnv(t, st, sfx)
	alice, bob, mallory, erin := e.user("alice"), e.user("bob"), e.user("mallory"), e.user("erin")
	poa := e.poa(alice, bob, []string{"*"}, 1)
	for _, tc := range []struct {
		app      string
		namesBob bool
	}{{"mobile-banking", true}, {"advisor-portal", false}} {
		_, _, err := e.svc.Offer(context.Background(), OfferRequest{By: Actor{Application: tc.app, Subject: mallory}, Principal: alice, Agent: erin,
			Basis: BasisSubDelegation, Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2030, 1, 1), Parent: poa.ID})
		if tc.namesBob && !errors.Is(err, ErrForbidden) || !tc.namesBob && (err == nil || err.Error() != "parent delegation "+poa.ID+" does not exist") {
			t.Fatalf("%s: %v, want forbidden (or, unseen, as a missing parent)", tc.app, err)
		}
		if got := strings.Contains(err.Error(), bob.String()); got != tc.namesBob {
			t.Fatalf("%s: %q names the parent's agent: %v, want %v", tc.app, err, got, tc.namesBob)
		}
	}
}
