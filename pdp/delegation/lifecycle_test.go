package delegation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestTransitions tries every change from every stored status by the
// principal, the agent and a stranger, on a self-declared power of
// attorney.
func TestTransitions(t *testing.T) {
	// Who may make each change, and from which status to which.
	rules := map[string]struct {
		who  string
		from map[Status]Status
	}{
		"accept":   {"agent", map[Status]Status{StatusOffered: StatusActive}},
		"revoke":   {"principal", map[Status]Status{StatusOffered: StatusRevoked, StatusActive: StatusRevoked, StatusSuspended: StatusRevoked}},
		"renounce": {"agent", map[Status]Status{StatusOffered: StatusRenounced, StatusActive: StatusRenounced, StatusSuspended: StatusRenounced}},
		"suspend":  {"principal", map[Status]Status{StatusActive: StatusSuspended}},
		"resume":   {"principal", map[Status]Status{StatusSuspended: StatusActive}},
	}
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newEnv(t, st, sfx)
		ctx := context.Background()
		alice, bob := e.user("alice"), e.user("bob")
		actors := map[string]Ref{"principal": alice, "agent": bob, "stranger": e.user("mallory")}
		// reach makes a delegation in the status.
		reach := func(s Status) Delegation {
			d := e.offer(OfferRequest{By: as(alice), Principal: alice, Agent: bob, Basis: BasisPowerOfAttorney,
				Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2030, 1, 1)})
			var err error
			switch s {
			case StatusActive:
				d, _, err = e.svc.Accept(ctx, d.ID, as(bob))
			case StatusSuspended:
				e.accept(d.ID, bob)
				d, _, err = e.svc.Suspend(ctx, d.ID, as(alice), "travel")
			case StatusRevoked:
				d, _, err = e.svc.Revoke(ctx, d.ID, as(alice), "")
			case StatusRenounced:
				d, _, err = e.svc.Renounce(ctx, d.ID, as(bob), "")
			}
			if err != nil || d.Status != s {
				t.Fatalf("reach %s: %v (%s)", s, err, d.Status)
			}
			return d
		}
		do := func(change, id string, by Ref) (Delegation, string, error) {
			switch change {
			case "accept":
				return e.svc.Accept(ctx, id, as(by))
			case "revoke":
				return e.svc.Revoke(ctx, id, as(by), "because")
			case "renounce":
				return e.svc.Renounce(ctx, id, as(by), "because")
			case "suspend":
				return e.svc.Suspend(ctx, id, as(by), "because")
			case "resume":
				return e.svc.Resume(ctx, id, as(by))
			}
			panic(change)
		}
		for _, from := range []Status{StatusOffered, StatusActive, StatusSuspended, StatusRevoked, StatusRenounced} {
			for _, change := range []string{"accept", "revoke", "renounce", "suspend", "resume"} {
				for _, actor := range []string{"principal", "agent", "stranger"} {
					t.Run(fmt.Sprintf("%s %s by %s", change, from, actor), func(t *testing.T) {
						before := reach(from)
						rule := rules[change]
						to, allowed := rule.from[from]
						d, token, err := do(change, before.ID, actors[actor])
						switch {
						case actor != rule.who:
							wantRule(t, err, CodeForbidden, "may not "+change, "only the "+rule.who)
						case !allowed:
							wantRule(t, err, CodeInvalidTransition, "cannot "+change, "it is "+string(from))
						default:
							if err != nil {
								t.Fatalf("%v", err)
							}
							last := d.History[len(d.History)-1]
							if d.Status != to || d.Version != before.Version+1 || len(d.History) != len(before.History)+1 ||
								last.Status != to || last.By.Subject != actors[actor] || last.Seq != len(d.History) {
								t.Errorf("after: %s", jsonOf(t, d))
							}
							if token == "" || e.proj.last(d.ID) != to {
								t.Errorf("token %q, projected %s", token, e.proj.last(d.ID))
							}
							if (change == "accept") != (d.AcceptedAt != nil && before.AcceptedAt == nil) {
								t.Errorf("accepted_at %v", d.AcceptedAt)
							}
							if stored := e.get(d.ID); jsonOf(t, stored) != jsonOf(t, d) {
								t.Errorf("stored %s\nreturned %s", jsonOf(t, stored), jsonOf(t, d))
							}
							return
						}
						if stored := e.get(before.ID); stored.Version != before.Version {
							t.Errorf("a refused change was stored: version %d", stored.Version)
						}
					})
				}
			}
		}
	})
}

func TestTransitionsSpecialActors(t *testing.T) {
	st, sfx := openFileT(t)
	e := newEnv(t, st, sfx)
	ctx := context.Background()
	carol, dave, acme, erin, frank := e.user("carol"), e.user("dave"), e.org("acme"), e.user("erin"), e.user("frank")
	guardian := e.offer(OfferRequest{By: register, Principal: carol, Agent: dave, Basis: BasisStatutoryGuardian,
		Source: SourceRegister, Scope: []string{"*"}, ValidUntil: date(2032, 5, 1)})
	// A statutory register record: the register application suspends,
	// resumes and revokes (TestRegisterRecordsChangeOnlyThroughTheRegister);
	// accept stays the agent's.
	if _, _, err := e.svc.Accept(ctx, guardian.ID, register); !errors.Is(err, ErrForbidden) {
		t.Errorf("register accepts for the agent: %v", err)
	}
	if _, _, err := e.svc.Accept(ctx, guardian.ID, as(dave)); err == nil {
		t.Error("accepting an active statutory delegation: no error")
	} else {
		wantRule(t, err, CodeInvalidTransition, "it is active")
	}
	for _, step := range []func() (Delegation, string, error){
		func() (Delegation, string, error) { return e.svc.Suspend(ctx, guardian.ID, register, "court order") },
		func() (Delegation, string, error) { return e.svc.Resume(ctx, guardian.ID, register) },
		func() (Delegation, string, error) {
			return e.svc.Revoke(ctx, guardian.ID, register, "carol came of age")
		},
	} {
		if _, _, err := step(); err != nil {
			t.Fatal(err)
		}
	}

	// A sub-delegation: the parent's agent may suspend and revoke it.
	rep := e.offer(OfferRequest{By: register, Principal: acme, Agent: erin, Basis: BasisLegalRepresentative,
		Source: SourceRegister, Scope: []string{"*"}, ValidUntil: date(2030, 1, 1), MaxDepth: 1})
	sub := e.offer(OfferRequest{By: as(erin), Principal: acme, Agent: frank, Basis: BasisSubDelegation,
		Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2029, 1, 1), Parent: rep.ID})
	if _, _, err := e.svc.Suspend(ctx, sub.ID, as(erin), ""); err == nil {
		t.Error("suspending an offered sub-delegation: no error")
	}
	e.accept(sub.ID, frank)
	if _, _, err := e.svc.Revoke(ctx, sub.ID, as(e.user("mallory")), ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("stranger revokes a sub-delegation: %v", err)
	}
	if _, _, err := e.svc.Suspend(ctx, sub.ID, as(erin), "audit"); err != nil {
		t.Errorf("parent's agent suspends: %v", err)
	}
	if _, _, err := e.svc.Revoke(ctx, sub.ID, as(erin), "left the company"); err != nil {
		t.Errorf("parent's agent revokes: %v", err)
	}
	if _, _, err := e.svc.Revoke(ctx, "dlg-missing", as(erin), ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke a missing id: %v", err)
	}
	if _, _, err := e.svc.Revoke(ctx, rep.ID, Actor{Subject: erin}, ""); err == nil {
		t.Error("a change without an application: no error")
	}
}

func TestAcceptAfterWindow(t *testing.T) {
	st, sfx := openFileT(t)
	e := newEnv(t, st, sfx)
	alice, bob := e.user("alice"), e.user("bob")
	d := e.offer(OfferRequest{By: as(alice), Principal: alice, Agent: bob, Basis: BasisPowerOfAttorney,
		Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: today.Add(time.Hour)})
	e.clock.Add(time.Hour)
	_, _, err := e.svc.Accept(context.Background(), d.ID, as(bob))
	wantRule(t, err, CodeInvalidTransition, "window ended at")
}

// conflictingStore makes the first Update lose a race: just before it, a
// competing change (the function) is stored.
type conflictingStore struct {
	Store
	compete func(ctx context.Context, id string)
	done    bool
}

func (s *conflictingStore) Update(ctx context.Context, d Delegation, prev int) error {
	if !s.done {
		s.done = true
		s.compete(ctx, d.ID)
	}
	return s.Store.Update(ctx, d, prev)
}

func TestConflictRetry(t *testing.T) {
	st, sfx := openFileT(t)
	base := newEnv(t, st, sfx)
	alice, bob := base.user("alice"), base.user("bob")
	tests := []struct {
		name    string
		compete string // what the competing writer does
		wantErr string // rule code, "" for success
		want    Status
	}{
		{"harmless competitor: retried and applied", "note", "", StatusSuspended},
		{"competitor revoked: retried and refused", "revoke", CodeInvalidTransition, StatusRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := base.poa(alice, bob, []string{"view_statements"}, 0)
			cs := &conflictingStore{Store: st, compete: func(ctx context.Context, id string) {
				var err error
				if tt.compete == "revoke" {
					_, _, err = base.svc.Revoke(ctx, id, as(alice), "")
				} else {
					_, err = base.svc.change(ctx, id, func(*Delegation) error { return nil }, nil)
				}
				if err != nil {
					t.Fatal(err)
				}
			}}
			svc := NewService(Config{Store: cs, Projector: base.proj, Now: base.clock.Now})
			got, _, err := svc.Suspend(context.Background(), d.ID, as(alice), "")
			if tt.wantErr != "" {
				wantRule(t, err, tt.wantErr)
			} else if err != nil || got.Version != d.Version+2 {
				t.Fatalf("Suspend after a conflict: %v (version %d)", err, got.Version)
			}
			if s := base.get(d.ID).Status; s != tt.want {
				t.Errorf("stored status %s, want %s", s, tt.want)
			}
		})
	}
}

// TestCascade: revoking or renouncing a delegation revokes its descendants
// two levels down, each stored, with its reason, and projected.
func TestCascade(t *testing.T) {
	for _, end := range []string{"revoke", "renounce"} {
		t.Run(end, func(t *testing.T) {
			forEachStore(t, func(t *testing.T, st Store, sfx string) {
				e := newEnv(t, st, sfx)
				ctx := context.Background()
				acme, erin, frank, gina, hank := e.org("acme"), e.user("erin"), e.user("frank"), e.user("gina"), e.user("hank")
				root := e.offer(OfferRequest{By: register, Principal: acme, Agent: erin, Basis: BasisLegalRepresentative,
					Source: SourceRegister, Scope: []string{"*"}, ValidUntil: date(2030, 1, 1), MaxDepth: 2})
				sub := func(parent Delegation, by, agent Ref, depth int) Delegation {
					d := e.offer(OfferRequest{By: as(by), Principal: acme, Agent: agent, Basis: BasisSubDelegation,
						Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2029, 1, 1),
						Parent: parent.ID, MaxDepth: depth})
					return e.accept(d.ID, agent)
				}
				child := sub(root, erin, frank, 1)
				grandchild := sub(child, frank, gina, 0)
				// An offered sibling and an already renounced one.
				offered := e.offer(OfferRequest{By: as(erin), Principal: acme, Agent: hank, Basis: BasisSubDelegation,
					Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2029, 1, 1), Parent: root.ID})
				gone := sub(child, frank, hank, 0)
				if _, _, err := e.svc.Renounce(ctx, gone.ID, as(hank), "no thanks"); err != nil {
					t.Fatal(err)
				}
				gone = e.get(gone.ID)

				var (
					d     Delegation
					token string
					err   error
				)
				if end == "revoke" {
					d, token, err = e.svc.Revoke(ctx, root.ID, register, "register entry deleted")
				} else {
					d, token, err = e.svc.Renounce(ctx, root.ID, as(erin), "resigned")
				}
				if err != nil {
					t.Fatal(err)
				}
				verb := map[string]string{"revoke": "revoked", "renounce": "renounced"}[end]
				if d.Status != Status(verb) {
					t.Fatalf("root %s", d.Status)
				}
				wantReason := map[string]string{
					child.ID:      "parent " + root.ID + " " + verb,
					offered.ID:    "parent " + root.ID + " " + verb,
					grandchild.ID: "parent " + child.ID + " revoked",
				}
				for id, reason := range wantReason {
					got := e.get(id)
					last := got.History[len(got.History)-1]
					if got.Status != StatusRevoked || last.Type != EventRevoked || last.Reason != reason {
						t.Errorf("%s: %s, last event %+v; want revoked with %q", id, got.Status, last, reason)
					}
					if p := e.proj.last(id); p != StatusRevoked {
						t.Errorf("%s projected %s", id, p)
					}
				}
				if after := e.get(gone.ID); after.Version != gone.Version || after.Status != StatusRenounced {
					t.Errorf("an ended descendant was changed: %s", jsonOf(t, after))
				}
				if want := fmt.Sprintf("token-%d", e.proj.n.Load()); token != want {
					t.Errorf("token %q, want the newest %q", token, want)
				}
			})
		})
	}
}

// TestSuspendedAncestor: suspending a delegation keeps its descendants'
// records but takes them out of the relationship store until resume.
func TestSuspendedAncestor(t *testing.T) {
	st, sfx := openFileT(t)
	e := newEnv(t, st, sfx)
	ctx := context.Background()
	acme, erin, frank := e.org("acme"), e.user("erin"), e.user("frank")
	root := e.offer(OfferRequest{By: register, Principal: acme, Agent: erin, Basis: BasisLegalRepresentative,
		Source: SourceRegister, Scope: []string{"*"}, ValidUntil: date(2030, 1, 1), MaxDepth: 1})
	child := e.offer(OfferRequest{By: as(erin), Principal: acme, Agent: frank, Basis: BasisSubDelegation,
		Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2029, 1, 1), Parent: root.ID})
	e.accept(child.ID, frank)
	q := Query{Actor: frank, Principal: acme, Action: "view_statements", Resource: e.acc("acc-acme")}
	steps := []struct {
		name      string
		do        func() error
		stored    Status
		projected Status
		proof     string
	}{
		{"suspend root", func() error { _, _, err := e.svc.Suspend(ctx, root.ID, register, "audit"); return err },
			StatusActive, StatusSuspended, ProofSuspended},
		{"resume root", func() error { _, _, err := e.svc.Resume(ctx, root.ID, register); return err },
			StatusActive, StatusActive, ProofActive},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := e.get(child.ID).Status; got != s.stored {
			t.Errorf("%s: child stored %s, want %s", s.name, got, s.stored)
		}
		if got := e.proj.last(child.ID); got != s.projected {
			t.Errorf("%s: child projected %s, want %s", s.name, got, s.projected)
		}
		if p, err := e.svc.Resolve(ctx, q); err != nil || p.Status != s.proof {
			t.Errorf("%s: Resolve = %+v %v, want %s", s.name, p, err, s.proof)
		}
	}
}

// TestProjectionFailure: the change stands, the error says so, Reconcile
// repairs it.
func TestProjectionFailure(t *testing.T) {
	st, sfx := openFileT(t)
	e := newEnv(t, st, sfx)
	ctx := context.Background()
	alice, bob := e.user("alice"), e.user("bob")
	e.proj.fail.Store(true)
	d, token, err := e.svc.Offer(ctx, OfferRequest{By: as(alice), Principal: alice, Agent: bob, Basis: BasisPowerOfAttorney,
		Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2030, 1, 1)})
	if !errors.Is(err, ErrProjection) || d.ID == "" || token != "" {
		t.Fatalf("Offer with a failing projector = %s %q %v", d.ID, token, err)
	}
	d, _, err = e.svc.Accept(ctx, d.ID, as(bob))
	if !errors.Is(err, ErrProjection) || d.Status != StatusActive || e.get(d.ID).Status != StatusActive {
		t.Fatalf("Accept with a failing projector = %s %v", d.Status, err)
	}
	if n, err := e.svc.Reconcile(ctx); !errors.Is(err, ErrProjection) || n != 0 {
		t.Errorf("Reconcile still failing = %d %v", n, err)
	}
	e.proj.fail.Store(false)
	if n, err := e.svc.Reconcile(ctx); err != nil || n != 1 {
		t.Errorf("Reconcile = %d %v, want 1 nil", n, err)
	}
	if p := e.proj.last(d.ID); p != StatusActive {
		t.Errorf("after Reconcile projected %s", p)
	}
}

// TestReconcileCompletesCascade: a revocation whose cascade did not happen
// (a crash between writes) is completed by Reconcile.
func TestReconcileCompletesCascade(t *testing.T) {
	st, sfx := openFileT(t)
	e := newEnv(t, st, sfx)
	ctx := context.Background()
	acme, erin, frank := e.org("acme"), e.user("erin"), e.user("frank")
	root := e.offer(OfferRequest{By: register, Principal: acme, Agent: erin, Basis: BasisLegalRepresentative,
		Source: SourceRegister, Scope: []string{"*"}, ValidUntil: date(2030, 1, 1), MaxDepth: 1})
	child := e.offer(OfferRequest{By: as(erin), Principal: acme, Agent: frank, Basis: BasisSubDelegation,
		Source: SourceSelfDeclared, Scope: []string{"view_statements"}, ValidUntil: date(2029, 1, 1), Parent: root.ID})
	child = e.accept(child.ID, frank)
	// Revoke the root behind the Service's back.
	r := e.get(root.ID)
	r.addEvent(EventRevoked, today, register, "", StatusRevoked)
	r.Version++
	if err := st.Update(ctx, r, r.Version-1); err != nil {
		t.Fatal(err)
	}
	n, err := e.svc.Reconcile(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Reconcile = %d %v", n, err)
	}
	got := e.get(child.ID)
	last := got.History[len(got.History)-1]
	if got.Status != StatusRevoked || last.Reason != "parent "+root.ID+" revoked" || last.By != reconcileActor {
		t.Errorf("child after Reconcile: %s %+v", got.Status, last)
	}
	if e.proj.last(child.ID) != StatusRevoked {
		t.Errorf("child projected %s", e.proj.last(child.ID))
	}
}

func TestImport(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		e := newEnv(t, st, sfx)
		ctx := context.Background()
		carol, dave := e.user("carol"), e.user("dave")
		d := record("dlg-seed"+sfx, carol, dave, date(2020, 3, 1))
		d.Basis, d.Source = BasisStatutoryGuardian, SourceRegister
		d.addEvent(EventActivated, date(2020, 3, 1), register, "", StatusActive)
		bad := record("dlg-bad"+sfx, carol, carol, today)

		d.Scope = []string{"*"}

		err := e.svc.Import(ctx, []Delegation{d, bad})
		wantRule(t, err, CodeInvalid, "is the principal")
		if !strings.Contains(err.Error(), "import record 1: delegation dlg-bad") {
			t.Errorf("error %q does not name the record", err)
		}
		if _, err := st.Get(ctx, d.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a failed import stored records: %v", err)
		}
		if err := e.svc.Import(ctx, []Delegation{d}); err != nil {
			t.Fatal(err)
		}
		if got := e.get(d.ID); jsonOf(t, got) != jsonOf(t, d) || e.proj.last(d.ID) != StatusActive {
			t.Errorf("imported %s\nwant %s (projected %s)", jsonOf(t, got), jsonOf(t, d), e.proj.last(d.ID))
		}
		// Importing again leaves the stored record alone.
		changed := d.Clone()
		changed.Scope = []string{"view_statements"}
		if err := e.svc.Import(ctx, []Delegation{changed}); err != nil {
			t.Fatal(err)
		}
		if got := e.get(d.ID); jsonOf(t, got.Scope) != `["*"]` {
			t.Errorf("re-import overwrote the scope: %v", got.Scope)
		}
		// History must be contiguous and end in the status.
		odd := record("dlg-odd"+sfx, carol, dave, today)
		odd.Status = StatusActive
		wantRule(t, e.svc.Import(ctx, []Delegation{odd}), CodeInvalid, "differs from its last event")
	})
}
