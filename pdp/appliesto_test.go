package pdp_test

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/policy"
)

// The bundles of the repository: the root bundle and every example.
var repoBundles = []string{"..", "../examples/authzen-todo", "../examples/authzen-certification", "../examples/northbank"}

// Todo example users (examples/authzen-todo/policies/entities.json).
const (
	todoRick  = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs" // admin, evil_genius
	todoMorty = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs" // editor
)

func loadBundle(t testing.TB, dir string) *policy.Bundle {
	t.Helper()
	b, err := policy.Load(context.Background(), policy.DirsFor(dir))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// countingFacts answers every relationship check "does not hold" and
// counts the checks it was asked: a refused request must not reach it.
type countingFacts struct{ checks *int }

func (c countingFacts) CheckFacts(_ context.Context, checks []pdp.FactCheck) ([]pdp.Fact, string, error) {
	*c.checks += len(checks)
	out := make([]pdp.Fact, len(checks))
	for i, fc := range checks {
		out[i] = pdp.Fact{FactCheck: fc}
	}
	return out, "rev-1", nil
}

// TestSubjectTypeTheActionDoesNotApplyTo: a caller cannot pose as a role,
// a group, an organisation or a resource by choosing the subject's (or the
// resource's) type. The engine denies a request whose principal or
// resource type the schema does not let the action apply to
// (entity_type_mismatch), before any policy or store sees it; the right
// types are still decided as before.
func TestSubjectTypeTheActionDoesNotApplyTo(t *testing.T) {
	todo := loadBundle(t, "../examples/authzen-todo")
	northbank := loadBundle(t, "../examples/northbank")
	inline := testBundle(t)
	ent := func(typ, id string) pdp.Entity { return pdp.Entity{Type: typ, ID: id} }
	acc := func(id string) pdp.Entity { return ent("account", id) }
	servicing := map[string]any{"purpose": "account_servicing"}
	tests := []struct {
		name     string
		bundle   *policy.Bundle
		req      pdp.Request
		mismatch bool   // denied entity_type_mismatch
		allowed  bool   // else: the decision
		message  string // in the mismatch's message
	}{
		// The Todo example: Role is a parent type, never a principal.
		{name: "todo: role admin deletes any todo", bundle: todo, mismatch: true, message: `subject type Role is not one action "can_delete_todo" applies to (User)`,
			req: pdp.Request{Subject: ent("role", "admin"), Action: pdp.Action{Name: "can_delete_todo"}, Resource: ent("todo", "t1")}},
		{name: "todo: role editor creates a todo", bundle: todo, mismatch: true,
			req: pdp.Request{Subject: ent("Role", "editor"), Action: pdp.Action{Name: "can_create_todo"}, Resource: ent("todo", "t1")}},
		{name: "todo: role evil_genius updates any todo", bundle: todo, mismatch: true,
			req: pdp.Request{Subject: ent("ROLE", "evil_genius"), Action: pdp.Action{Name: "can_update_todo"}, Resource: ent("todo", "t1")}},
		{name: "todo: a role reads a user", bundle: todo, mismatch: true,
			req: pdp.Request{Subject: ent("role", "viewer"), Action: pdp.Action{Name: "can_read_user"}, Resource: ent("user", todoMorty)}},
		{name: "todo: a todo as the subject", bundle: todo, mismatch: true,
			req: pdp.Request{Subject: ent("todo", "t1"), Action: pdp.Action{Name: "can_read_todos"}, Resource: ent("todo", "t1")}},
		{name: "todo: a user as the resource of can_read_todos", bundle: todo, mismatch: true, message: `resource type User is not one action "can_read_todos" applies to (Todo)`,
			req: pdp.Request{Subject: ent("user", todoRick), Action: pdp.Action{Name: "can_read_todos"}, Resource: ent("user", todoMorty)}},
		{name: "todo: a role as the resource of can_read_user", bundle: todo, mismatch: true,
			req: pdp.Request{Subject: ent("user", todoRick), Action: pdp.Action{Name: "can_read_user"}, Resource: ent("role", "admin")}},
		{name: "todo: the admin user still deletes", bundle: todo, allowed: true,
			req: pdp.Request{Subject: ent("user", todoRick), Action: pdp.Action{Name: "can_delete_todo"}, Resource: ent("todo", "t1")}},
		{name: "todo: a user still reads a user", bundle: todo, allowed: true,
			req: pdp.Request{Subject: ent("user", todoMorty), Action: pdp.Action{Name: "can_read_user"}, Resource: ent("user", todoRick)}},
		{name: "todo: an editor still cannot delete another's todo", bundle: todo,
			req: pdp.Request{Subject: ent("user", todoMorty), Action: pdp.Action{Name: "can_delete_todo"}, Resource: ent("todo", "t1")}},

		// Northbank: only a user acts on an account; only an application
		// sends marketing, to a user.
		{name: "northbank: the organisation itself views its statements", bundle: northbank, mismatch: true,
			req: pdp.Request{Subject: ent("organisation", "acme"), Action: pdp.Action{Name: "view_statements"}, Resource: acc("acc-acme"), Context: servicing}},
		{name: "northbank: the organisation pays", bundle: northbank, mismatch: true,
			req: pdp.Request{Subject: ent("Organisation", "acme"), Action: pdp.Action{Name: "make_payment"}, Resource: acc("acc-acme"),
				Context: map[string]any{"purpose": "account_servicing", "amount": num("10"), "currency": "EUR"}}},
		{name: "northbank: an account as the subject", bundle: northbank, mismatch: true,
			req: pdp.Request{Subject: acc("acc-alice"), Action: pdp.Action{Name: "view_statements"}, Resource: acc("acc-alice"), Context: servicing}},
		{name: "northbank: an application views statements", bundle: northbank, mismatch: true,
			req: pdp.Request{Subject: ent("application", "mobile-banking"), Action: pdp.Action{Name: "view_statements"}, Resource: acc("acc-alice"), Context: servicing}},
		{name: "northbank: a user sends marketing", bundle: northbank, mismatch: true,
			req: pdp.Request{Subject: ent("user", "alice"), Action: pdp.Action{Name: "send_marketing"}, Resource: ent("user", "ivan"), Context: map[string]any{"purpose": "marketing"}}},
		{name: "northbank: marketing sent to an account", bundle: northbank, mismatch: true,
			req: pdp.Request{Subject: ent("application", "marketing-hub"), Action: pdp.Action{Name: "send_marketing"}, Resource: acc("acc-alice"), Context: map[string]any{"purpose": "marketing"}}},
		{name: "northbank: an organisation's statements as the resource", bundle: northbank, mismatch: true,
			req: pdp.Request{Subject: ent("user", "erin"), Action: pdp.Action{Name: "view_statements"}, Resource: ent("organisation", "acme"), Context: servicing}},

		// The engine tests' bundle: Group is a parent type (principal in Group::"staff").
		{name: "inline: group staff as the subject", bundle: inline, mismatch: true,
			req: pdp.Request{Subject: ent("group", "staff"), Action: pdp.Action{Name: "view"}, Resource: ent("doc", "x")}},
		{name: "inline: a member of staff still views", bundle: inline, allowed: true,
			req: pdp.Request{Subject: ent("user", "sam"), Action: pdp.Action{Name: "view"}, Resource: ent("doc", "x")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checks := 0
			e := pdp.NewEngine(pdp.Components{Bundles: tc.bundle, Facts: countingFacts{&checks}})
			tc.req.Application = "mobile-banking"
			d, err := e.Decide(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			refused := slices.Equal(d.Reasons, []string{pdp.ReasonEntityTypeMismatch})
			switch {
			case tc.mismatch && (d.Allowed || !refused):
				t.Fatalf("decision %v %v (%s), want deny [%s]", d.Allowed, d.Reasons, d.Message, pdp.ReasonEntityTypeMismatch)
			case tc.mismatch && (checks != 0 || len(d.Policies) != 0 || len(d.Input.Entities) != 0):
				t.Errorf("a refused request reached the store (%d checks) or Cedar (policies %v, entities %v)", checks, d.Policies, d.Input.Entities)
			case tc.mismatch && !strings.Contains(d.Message, tc.message):
				t.Errorf("message %q, want it to hold %q", d.Message, tc.message)
			case !tc.mismatch && (refused || d.Allowed != tc.allowed):
				t.Fatalf("decision %v %v (%s), want %v", d.Allowed, d.Reasons, d.Message, tc.allowed)
			}
		})
	}
}

// noActivity is an activity record that knows no one (nobody is dormant).
type noActivity struct{}

func (noActivity) States(_ context.Context, qs []dormancy.Query) ([]dormancy.State, error) {
	return make([]dormancy.State, len(qs)), nil
}
func (noActivity) TouchDecision(dormancy.Ref, dormancy.Ref, []string, time.Time) {}

// TestNorthbankRightTypesReachTheStores: the right types pass the check
// and are decided on their facts (here: none hold).
func TestNorthbankRightTypesReachTheStores(t *testing.T) {
	b := loadBundle(t, "../examples/northbank")
	checks := 0
	e := pdp.NewEngine(pdp.Components{Bundles: b, Facts: countingFacts{&checks}, Dormancy: noActivity{}})
	d, err := e.Decide(context.Background(), pdp.Request{Application: "mobile-banking",
		Subject: pdp.Entity{Type: "user", ID: "alice"}, Action: pdp.Action{Name: "view_statements"},
		Resource: pdp.Entity{Type: "account", ID: "acc-alice"}, Context: map[string]any{"purpose": "account_servicing"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed || slices.Contains(d.Reasons, pdp.ReasonEntityTypeMismatch) || checks == 0 {
		t.Fatalf("decision %v %v after %d checks; want a deny on the facts, not on the types", d.Allowed, d.Reasons, checks)
	}
}

// TestEveryBundleRefusesTypesOutsideAppliesTo probes every bundle of the
// repository with every (action, declared type) pair the action does not
// apply to, as subject and as resource, using the ids of entities the
// bundle holds (a role, a group, an organisation) and a made-up one: each
// is denied entity_type_mismatch, whatever the policies would say.
func TestEveryBundleRefusesTypesOutsideAppliesTo(t *testing.T) {
	for _, dir := range repoBundles {
		t.Run(dir, func(t *testing.T) {
			b := loadBundle(t, dir)
			e := pdp.NewEngine(pdp.Components{Bundles: b})
			var reqs []pdp.Request
			for _, r := range typeMismatches(b) {
				r.Application = "mobile-banking"
				reqs = append(reqs, r)
			}
			if len(reqs) == 0 {
				t.Fatalf("%s: no type the actions do not apply to", dir)
			}
			ds, err := e.DecideBatch(context.Background(), reqs)
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range ds {
				if d.Allowed || !slices.Equal(d.Reasons, []string{pdp.ReasonEntityTypeMismatch}) {
					t.Errorf("%s %s:%s %s %s:%s: %v %v (%s)", dir, reqs[i].Subject.Type, reqs[i].Subject.ID, reqs[i].Action.Name,
						reqs[i].Resource.Type, reqs[i].Resource.ID, d.Allowed, d.Reasons, d.Message)
				}
			}
			t.Logf("%d requests refused", len(reqs))
		})
	}
}

// typeMismatches builds, for every action of b, requests whose subject (or
// resource) is of a declared type the action does not apply to, the other
// entity of a type it does.
func typeMismatches(b *policy.Bundle) []pdp.Request {
	s := b.Schema()
	var all []types.EntityType
	for et := range s.Entities {
		all = append(all, et)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	idsOf := func(et types.EntityType) []string {
		out := []string{"made-up"}
		for uid := range b.Entities() {
			if uid.Type == et {
				out = append(out, string(uid.ID))
			}
		}
		sort.Strings(out)
		return out
	}
	var out []pdp.Request
	for _, name := range b.ActionNames() {
		uid, _, _ := b.Action(name)
		at := s.Actions[uid].AppliesTo
		if at == nil || len(at.Principals) == 0 || len(at.Resources) == 0 {
			continue
		}
		okP, okR := pdp.Entity{Type: string(at.Principals[0]), ID: "p1"}, pdp.Entity{Type: string(at.Resources[0]), ID: "r1"}
		for _, et := range all {
			for _, id := range idsOf(et) {
				ent := pdp.Entity{Type: string(et), ID: id}
				if !slices.Contains(at.Principals, et) {
					out = append(out, pdp.Request{Subject: ent, Action: pdp.Action{Name: name}, Resource: okR})
				}
				if !slices.Contains(at.Resources, et) {
					out = append(out, pdp.Request{Subject: okP, Action: pdp.Action{Name: name}, Resource: ent})
				}
			}
		}
	}
	return out
}

// TestTypeMismatchOnEveryPath: the batch, search and replay paths refuse
// what Decide refuses. A batch denies the item alone; a subject search of
// type role finds no role; a new decision replays to itself.
func TestTypeMismatchOnEveryPath(t *testing.T) {
	b := loadBundle(t, "../examples/authzen-todo")
	e := pdp.NewEngine(pdp.Components{Bundles: b, Now: func() time.Time { return time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC) }})
	ctx := context.Background()
	del := pdp.Action{Name: "can_delete_todo"}
	todo := pdp.Entity{Type: "todo", ID: "t1", Properties: map[string]any{"ownerID": "beth@the-smiths.com"}}
	role := pdp.Request{Subject: pdp.Entity{Type: "role", ID: "admin"}, Action: del, Resource: todo}
	admin := pdp.Request{Subject: pdp.Entity{Type: "user", ID: todoRick}, Action: del, Resource: todo}

	t.Run("batch", func(t *testing.T) {
		ds, err := e.DecideBatch(ctx, []pdp.Request{role, admin})
		if err != nil {
			t.Fatal(err)
		}
		if ds[0].Allowed || !slices.Equal(ds[0].Reasons, []string{pdp.ReasonEntityTypeMismatch}) || !ds[1].Allowed {
			t.Fatalf("batch: %v %v, %v %v; want the role refused, the admin allowed", ds[0].Allowed, ds[0].Reasons, ds[1].Allowed, ds[1].Reasons)
		}
	})
	t.Run("subject search", func(t *testing.T) {
		got, err := e.SearchSubjects(ctx, pdp.Request{Subject: pdp.Entity{Type: "role"}, Action: del, Resource: todo})
		if err != nil || len(got) != 0 {
			t.Fatalf("roles that may delete: %v %v, want none", got, err)
		}
		got, err = e.SearchSubjects(ctx, pdp.Request{Subject: pdp.Entity{Type: "user"}, Action: del, Resource: todo})
		if err != nil || !slices.Equal(ids(got), []string{todoRick}) {
			t.Fatalf("users that may delete: %v %v, want rick", got, err)
		}
	})
	t.Run("resource search", func(t *testing.T) {
		got, err := e.SearchResources(ctx, pdp.Request{Subject: pdp.Entity{Type: "user", ID: todoMorty}, Action: pdp.Action{Name: "can_read_user"}, Resource: pdp.Entity{Type: "role"}})
		if err != nil || len(got) != 0 {
			t.Fatalf("roles morty may read as users: %v %v, want none", got, err)
		}
	})
	t.Run("replay", func(t *testing.T) {
		d, err := e.Decide(ctx, role)
		if err != nil {
			t.Fatal(err)
		}
		r := pdp.NewReplayer().Replay(b, role, d, pdp.ReplayOptions{})
		if r.Outcome != pdp.Reproduced || !slices.Equal(r.Decision.Reasons, []string{pdp.ReasonEntityTypeMismatch}) {
			t.Fatalf("replay: %s %v %v", r.Outcome, r.Decision.Reasons, r.Differences)
		}
	})
	t.Run("replay of an allow recorded before the rule", func(t *testing.T) {
		// What an engine without the rule recorded for the role: rick's
		// evaluated allow with the role in the principal's place.
		rec, err := e.Decide(ctx, admin)
		if err != nil || !rec.Allowed {
			t.Fatalf("%v %v", rec.Allowed, err)
		}
		admins := types.NewEntityUID("Role", "admin")
		rec.Input.Principal = admins
		rec.Input.Entities = append([]types.Entity{b.Entities()[admins]}, rec.Input.Entities[1:]...)
		for _, opts := range []pdp.ReplayOptions{{}, {RequestRedacted: true}} {
			r := pdp.NewReplayer().Replay(b, role, rec, opts)
			if r.Outcome != pdp.Differs || r.Decision.Allowed || !slices.Equal(r.Decision.Reasons, []string{pdp.ReasonEntityTypeMismatch}) {
				t.Errorf("replay %+v: %s %v %v %v", opts, r.Outcome, r.Decision.Allowed, r.Decision.Reasons, r.Differences)
			}
		}
	})
}

// TestActionWithoutAppliesTo: an action the schema declares without
// appliesTo applies to no principal and no resource (as in Cedar's request
// validation), so every request for it is refused.
func TestActionWithoutAppliesTo(t *testing.T) {
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema": []byte("entity User;\nentity Doc;\naction view appliesTo { principal: [User], resource: [Doc] };\naction ping;\n"),
		"policies/p.cedar":     []byte(`@id("v") permit (principal, action == Action::"view", resource);`),
	})
	if err != nil {
		t.Fatal(err)
	}
	e := pdp.NewEngine(pdp.Components{Bundles: b})
	for _, action := range []string{"ping", "view"} {
		d, err := e.Decide(context.Background(), pdp.Request{Subject: pdp.Entity{Type: "user", ID: "u"}, Action: pdp.Action{Name: action}, Resource: pdp.Entity{Type: "doc", ID: "d"}})
		if err != nil {
			t.Fatal(err)
		}
		want := action == "view"
		if d.Allowed != want || (!want && !slices.Equal(d.Reasons, []string{pdp.ReasonEntityTypeMismatch})) {
			t.Errorf("%s: %v %v (%s)", action, d.Allowed, d.Reasons, d.Message)
		}
	}
}

// FuzzTypeMismatchNeverAllowed: whatever types, ids and action a request
// names, the Todo example allows it only when the subject's and the
// resource's types are ones the action applies to, and every refusal of a
// declared type on a declared action is entity_type_mismatch.
func FuzzTypeMismatchNeverAllowed(f *testing.F) {
	for _, s := range [][5]string{
		{"role", "admin", "can_delete_todo", "todo", "t1"},
		{"user", todoRick, "can_delete_todo", "todo", "t1"},
		{"Role", "evil_genius", "can_update_todo", "Todo", "t1"},
		{"todo", "t1", "can_read_todos", "todo", "t1"},
		{"user", todoMorty, "can_read_user", "role", "viewer"},
		{"USER", todoRick, "can_read_user", "user", todoMorty},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	b := loadBundle(f, "../examples/authzen-todo")
	e := pdp.NewEngine(pdp.Components{Bundles: b})
	f.Fuzz(func(t *testing.T, st, sid, action, rt, rid string) {
		req := pdp.Request{Subject: pdp.Entity{Type: st, ID: sid}, Action: pdp.Action{Name: action}, Resource: pdp.Entity{Type: rt, ID: rid}}
		d, err := e.Decide(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		pt, okP := b.EntityType(st)
		rtype, okR := b.EntityType(rt)
		uid, _, okA := b.Action(action)
		if !okP || !okR || !okA || sid == "" || rid == "" {
			if d.Allowed {
				t.Fatalf("allowed %+v", req)
			}
			return
		}
		principals, resources := b.AppliesTo(uid)
		applies := slices.Contains(principals, pt) && slices.Contains(resources, rtype)
		switch {
		case !applies && (d.Allowed || !slices.Equal(d.Reasons, []string{pdp.ReasonEntityTypeMismatch})):
			t.Fatalf("%+v: %v %v, want %s", req, d.Allowed, d.Reasons, pdp.ReasonEntityTypeMismatch)
		case applies && slices.Contains(d.Reasons, pdp.ReasonEntityTypeMismatch):
			t.Fatalf("%+v: refused although the action applies to its types", req)
		}
	})
}
