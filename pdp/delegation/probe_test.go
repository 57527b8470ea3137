package delegation

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestOfferUnderUnseenParentAsMissing: an offer under a parent the calling
// application may not read, by an actor who is neither the parent's
// principal nor its agent, is refused exactly as under a parent that does
// not exist — before any rule could show the parent's contents (its
// principal, status, scope, bounds). Through an application that reads the
// parent, or for the parent's own principal or agent, the rules answer as
// they always did.
func TestOfferUnderUnseenParentAsMissing(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newEnv(t, st, sfx)
		ctx := context.Background()
		alice, bob, mallory, erin := e.user("alice"), e.user("bob"), e.user("mallory"), e.user("erin")
		parent := e.poa(alice, bob, []string{"view_statements"}, 1) // through mobile-banking
		via := func(app string, r Ref) Actor { return Actor{Application: app, Subject: r} }
		offer := func(by Actor, principal Ref, parentID string) error {
			_, _, err := e.svc.Offer(ctx, OfferRequest{By: by, Principal: principal, Agent: erin, Basis: BasisSubDelegation,
				Source: SourceSelfDeclared, Scope: []string{"view_statements", "make_payment"}, ValidUntil: date(2031, 1, 1), Parent: parentID})
			return err
		}
		missingID := "dlg-nobody" + sfx
		missing := offer(via("advisor-portal", mallory), mallory, missingID)
		if missing == nil {
			t.Fatal("an offer under a missing parent was accepted")
		}
		asMissing := strings.ReplaceAll(missing.Error(), missingID, parent.ID)
		for _, tc := range []struct {
			name      string
			by        Actor
			principal Ref
			hidden    bool
			want      string // in the error, when not hidden
		}{
			// the reviewer's reproduction: mallory offers as the principal of
			// her own offer, under alice's delegation
			{"a stranger as the offer's principal, unseen", via("advisor-portal", mallory), mallory, true, ""},
			{"a stranger for the parent's principal, unseen", via("advisor-portal", mallory), alice, true, ""},
			{"a stranger through the application that reads the parent", via("mobile-banking", mallory), mallory, false, "differs from its parent"},
			{"the parent's principal, unseen", via("advisor-portal", alice), alice, false, "exceeds its parent"},
			{"the parent's agent, unseen", via("advisor-portal", bob), alice, false, "exceeds its parent"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := offer(tc.by, tc.principal, parent.ID)
				if err == nil {
					t.Fatal("accepted")
				}
				if tc.hidden {
					var re *RuleError
					if err.Error() != asMissing || !errors.As(err, &re) || re.Code != CodeInvalid {
						t.Fatalf("%v, want exactly %q (as a missing parent)", err, asMissing)
					}
					for _, leak := range []string{alice.String(), bob.String(), "max_depth", "scope", "active"} {
						if strings.Contains(err.Error(), leak) {
							t.Fatalf("%q shows %s", err, leak)
						}
					}
					return
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("%v, want %q", err, tc.want)
				}
			})
		}
	})
}

// TestChangesAnswerUnseenRecordsAsUnknown: every change (accept, revoke,
// renounce, suspend, resume) that the actor may not make, through an
// application that may not read the record, for an actor who takes no
// part in it, is refused with the very error of an id that does not exist
// (and writes nothing to the journal); through an application that reads
// the record, or for an actor who takes part, it stays ErrForbidden.
func TestChangesAnswerUnseenRecordsAsUnknown(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newEnv(t, st, sfx)
		j := &memJournal{}
		e.svc.jrn = j
		ctx := context.Background()
		alice, bob, mallory, erin := e.user("alice"), e.user("bob"), e.user("mallory"), e.user("erin")
		active := e.poa(alice, bob, []string{"*"}, 1)
		offered := e.offer(OfferRequest{By: as(alice), Principal: alice, Agent: erin, Basis: BasisPowerOfAttorney,
			Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2030, 1, 1)})
		carol := e.user("carol")
		suspended := e.poa(alice, carol, []string{"*"}, 0)
		if _, _, err := e.svc.Suspend(ctx, suspended.ID, as(alice), "t"); err != nil {
			t.Fatal(err)
		}
		ops := []struct {
			name string
			id   string
			do   func(id string, by Actor) error
		}{
			{"accept", offered.ID, func(id string, by Actor) error { _, _, err := e.svc.Accept(ctx, id, by); return err }},
			{"revoke", active.ID, func(id string, by Actor) error { _, _, err := e.svc.Revoke(ctx, id, by, "t"); return err }},
			{"renounce", active.ID, func(id string, by Actor) error { _, _, err := e.svc.Renounce(ctx, id, by, "t"); return err }},
			{"suspend", active.ID, func(id string, by Actor) error { _, _, err := e.svc.Suspend(ctx, id, by, "t"); return err }},
			{"resume", suspended.ID, func(id string, by Actor) error { _, _, err := e.svc.Resume(ctx, id, by); return err }},
		}
		unseen := func(r Ref) Actor { return Actor{Application: "advisor-portal", Subject: r} }
		for _, op := range ops {
			t.Run(op.name, func(t *testing.T) {
				before := len(j.recorded)
				missingID := "dlg-nobody" + sfx
				missing := op.do(missingID, unseen(mallory))
				if !errors.Is(missing, ErrNotFound) {
					t.Fatalf("unknown id: %v", missing)
				}
				err := op.do(op.id, unseen(mallory))
				if want := strings.ReplaceAll(missing.Error(), missingID, op.id); err == nil || err.Error() != want || !errors.Is(err, ErrNotFound) {
					t.Fatalf("a stranger through an application that may not read it: %v, want exactly %q", err, want)
				}
				if err := op.do(op.id, as(mallory)); !errors.Is(err, ErrForbidden) {
					t.Fatalf("a stranger through the application that reads it: %v, want forbidden", err)
				}
				// a party who may not make this change: the agent may not
				// suspend, the principal may not accept or renounce
				party := bob
				switch op.name {
				case "accept", "renounce":
					party = alice
				case "resume":
					party = carol
				}
				if err := op.do(op.id, unseen(party)); !errors.Is(err, ErrForbidden) {
					t.Fatalf("%s through an application that may not read it: %v, want forbidden", party, err)
				}
				if n := len(j.recorded); n != before {
					t.Fatalf("refusals journalled %d records", n-before)
				}
			})
		}
	})
}

// TestOfferIDChosenOnlyByWhomMayLearnIt: an application chooses the id of
// an offer only when it may learn whether any id is taken — a register
// application or one that reads every record (which is refused 409 for a
// taken id, before anything is journalled); any other is refused 403 and
// gets an id made for it when it leaves the id out, so that it cannot
// probe ids by offering.
func TestOfferIDChosenOnlyByWhomMayLearnIt(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newEnv(t, st, sfx)
		j := &memJournal{}
		e.svc = NewService(Config{Store: st, Now: e.clock.Now, Journal: j,
			RegisterApplications: []string{register.Application}, ReaderApplications: []string{"backoffice"}})
		ctx := context.Background()
		alice, bob := e.user("alice"), e.user("bob")
		taken := e.poa(alice, bob, []string{"*"}, 0) // through mobile-banking
		offer := func(app, id string) (Delegation, error) {
			d, _, err := e.svc.Offer(ctx, OfferRequest{ID: id, By: Actor{Application: app, Subject: alice}, Principal: alice,
				Agent: e.user("erin"), Basis: BasisPowerOfAttorney, Source: SourceSelfDeclared, Scope: []string{"view_statements"},
				ValidUntil: date(2030, 1, 1)})
			return d, err
		}
		for _, tc := range []struct {
			name, app, id string
			want          error // nil: created with that id
		}{
			{"mobile-banking, a free id", "mobile-banking", "poa-free-1" + sfx, ErrForbidden},
			{"mobile-banking, a taken id", "mobile-banking", taken.ID, ErrForbidden},
			{"advisor-portal, a taken id it may not read", "advisor-portal", taken.ID, ErrForbidden},
			{"the whole view, a free id", "backoffice", "poa-free-2" + sfx, nil},
			{"the whole view, a taken id", "backoffice", taken.ID, ErrExists},
			{"a register application, a free id", register.Application, "poa-free-3" + sfx, nil},
			{"a register application, a taken id", register.Application, taken.ID, ErrExists},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := len(j.recorded) + len(j.notApplied)
				d, err := offer(tc.app, tc.id)
				if tc.want == nil {
					if err != nil || d.ID != tc.id {
						t.Fatalf("%s %v, want %s", d.ID, err, tc.id)
					}
					return
				}
				if !errors.Is(err, tc.want) {
					t.Fatalf("%v, want %v", err, tc.want)
				}
				if n := len(j.recorded) + len(j.notApplied); n != before {
					t.Fatalf("a refused offer journalled %d records", n-before)
				}
			})
		}
		d, err := offer("mobile-banking", "")
		if err != nil || !strings.HasPrefix(d.ID, "dlg-") {
			t.Fatalf("without an id: %s %v", d.ID, err)
		}
	})
}
