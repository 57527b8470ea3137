package pdp_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/relations"
)

// searchBundle is a small bank whose users and accounts live mostly in
// SpiceDB: the bundle knows one user (u-bundle) and one account
// (acc-bundle); everyone else exists only through relationships. Two forbid
// policies block a subject and a resource that SpiceDB does return.
var searchBundle = map[string]string{
	"schema/bank.cedarschema": `
entity User;
entity Account;
action make_payment appliesTo { principal: [User], resource: [Account],
  context: { amount?: Long, rel: { make_payment: Bool } } };
action view_statements appliesTo { principal: [User], resource: [Account],
  context: { rel: { view_statements: Bool } } };
`,
	"schema/bank.zed": `
caveat within_mandate(now timestamp, valid_from timestamp, valid_until timestamp, amount double, max_amount double) {
  now >= valid_from && now < valid_until && amount <= max_amount
}
definition user {}
definition account {
  relation owner: user
  relation payment_agent: user with within_mandate
  permission make_payment = owner + payment_agent
  permission view_statements = owner
}
`,
	"policies/bank.cedar": `
@id("pay-with-authority")
permit (principal, action == Action::"make_payment", resource) when { context.rel.make_payment };
@id("view-with-authority")
permit (principal, action == Action::"view_statements", resource) when { context.rel.view_statements };
@id("mallory-is-barred")
forbid (principal == User::"mallory", action, resource);
@id("acc-blocked-is-frozen")
forbid (principal, action, resource == Account::"acc-blocked");
`,
	"policies/entities.json": `[
  {"uid": {"type": "User", "id": "u-bundle"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Account", "id": "acc-bundle"}, "attrs": {}, "parents": []}
]`,
}

// searchRelationships: u1 (known only to SpiceDB) owns acc-x and acc-blocked
// (both only in SpiceDB) and acc-bundle; u-bundle owns acc-x and acc-bundle;
// mallory owns acc-x; bob pays from acc-x within a mandate; u2 owns acc-y.
const searchRelationships = `
account:acc-x#owner@user:u1
account:acc-x#owner@user:u-bundle
account:acc-x#owner@user:mallory
account:acc-x#payment_agent@user:bob[within_mandate:{"valid_from":"2026-01-01T00:00:00Z","valid_until":"2041-12-31T00:00:00Z","max_amount":1000}]
account:acc-bundle#owner@user:u1
account:acc-bundle#owner@user:u-bundle
account:acc-blocked#owner@user:u1
account:acc-y#owner@user:u2
`

// spiceFacts adapts the real relationship store to the engine, as the
// pdp command does: checks and lookups.
type spiceFacts struct{ store *relations.Store }

var (
	_ pdp.FactSource = spiceFacts{}
	_ pdp.FactLookup = spiceFacts{}
)

func (f spiceFacts) CheckFacts(ctx context.Context, checks []pdp.FactCheck) ([]pdp.Fact, string, error) {
	rc := make([]relations.Check, len(checks))
	for i, c := range checks {
		rc[i] = relations.Check{
			Resource:   relations.Object{Type: c.ResourceType, ID: c.ResourceID},
			Permission: c.Permission,
			Subject:    relations.Object{Type: c.SubjectType, ID: c.SubjectID},
			Context:    c.Context,
		}
	}
	res, err := f.store.CheckBulk(ctx, rc)
	if err != nil {
		return nil, "", err
	}
	out := make([]pdp.Fact, len(res.Items))
	for i, r := range res.Items {
		out[i] = pdp.Fact{FactCheck: checks[i], Has: r.Has, Conditional: r.Conditional, MissingContext: r.MissingContext}
	}
	return out, res.Revision, nil
}

func (f spiceFacts) LookupResources(ctx context.Context, resourceType, permission, subjectType, subjectID string, caveat map[string]any) ([]string, error) {
	ids, _, err := f.store.LookupResources(ctx, resourceType, permission, relations.Object{Type: subjectType, ID: subjectID}, caveat, pdp.MaxLookupCandidates)
	return ids, err
}

func (f spiceFacts) LookupSubjects(ctx context.Context, resourceType, resourceID, permission, subjectType string, caveat map[string]any) ([]string, error) {
	ids, _, err := f.store.LookupSubjects(ctx, relations.Object{Type: resourceType, ID: resourceID}, permission, subjectType, caveat, pdp.MaxLookupCandidates)
	return ids, err
}

// checksOnly hides the lookups of a fact source: search over the bundle's
// entities only.
type checksOnly struct{ pdp.FactSource }

// searchSetup writes searchBundle to a folder, loads it, and opens an
// embedded SpiceDB (memory) holding its SpiceDB schema and
// searchRelationships.
func searchSetup(t *testing.T) (*policy.Bundle, *relations.Store) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range searchBundle {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := policy.Load(ctx, policy.DirsFor(dir))
	if err != nil {
		t.Fatal(err)
	}
	store, err := relations.Open(ctx, relations.Config{Engine: relations.EngineMemory}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, err := store.WriteSchema(ctx, b.SpiceDBSchema()); err != nil {
		t.Fatal(err)
	}
	rels, err := relations.ReadRelationshipsText(strings.NewReader(searchRelationships))
	if err != nil {
		t.Fatal(err)
	}
	ups := make([]relations.Update, len(rels))
	for i, r := range rels {
		ups[i] = relations.Update{Op: relations.OpTouch, Rel: r}
	}
	if _, err := store.WriteRelationships(ctx, ups); err != nil {
		t.Fatal(err)
	}
	return b, store
}

func searchEngine(b *policy.Bundle, facts pdp.FactSource) *pdp.Engine {
	return pdp.NewEngine(pdp.Components{Bundles: b, Facts: facts,
		Now: func() time.Time { return time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC) }})
}

func ids(es []pdp.Entity) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func TestSearchFindsEntitiesOnlySpiceDBKnows(t *testing.T) {
	b, store := searchSetup(t)
	ctx := context.Background()
	resources := func(user, action string, reqCtx map[string]any) pdp.Request {
		return pdp.Request{Subject: pdp.Entity{Type: "user", ID: user}, Action: pdp.Action{Name: action},
			Resource: pdp.Entity{Type: "account"}, Context: reqCtx}
	}
	subjects := func(action, account string, reqCtx map[string]any) pdp.Request {
		return pdp.Request{Subject: pdp.Entity{Type: "user"}, Action: pdp.Action{Name: action},
			Resource: pdp.Entity{Type: "account", ID: account}, Context: reqCtx}
	}
	tests := []struct {
		name       string
		facts      pdp.FactSource
		subjectsOf bool
		req        pdp.Request
		want       []string
	}{
		{"resources of a subject only SpiceDB knows, one forbidden", spiceFacts{store}, false,
			resources("u1", "view_statements", nil), []string{"acc-bundle", "acc-x"}},
		{"the bundle's entities and SpiceDB's together", spiceFacts{store}, false,
			resources("u-bundle", "view_statements", nil), []string{"acc-bundle", "acc-x"}},
		{"without lookups: the bundle's entities only", checksOnly{spiceFacts{store}}, false,
			resources("u-bundle", "view_statements", nil), []string{"acc-bundle"}},
		{"without lookups a subject only SpiceDB knows is unknown", checksOnly{spiceFacts{store}}, false,
			resources("u1", "view_statements", nil), []string{}},
		{"a caveated permission that holds", spiceFacts{store}, false,
			resources("bob", "make_payment", map[string]any{"amount": 250}), []string{"acc-x"}},
		{"a caveated permission that does not hold", spiceFacts{store}, false,
			resources("bob", "make_payment", map[string]any{"amount": 1500}), []string{}},
		{"a caveated permission without its context", spiceFacts{store}, false,
			resources("bob", "make_payment", nil), []string{}},
		{"an unknown subject", spiceFacts{store}, false,
			resources("nobody", "view_statements", nil), []string{}},
		{"an unknown type", spiceFacts{store}, false,
			pdp.Request{Subject: pdp.Entity{Type: "user", ID: "u1"}, Action: pdp.Action{Name: "view_statements"}, Resource: pdp.Entity{Type: "card"}}, []string{}},
		{"an unknown action", spiceFacts{store}, false,
			resources("u1", "close", nil), []string{}},

		{"subjects of an account only SpiceDB knows, one forbidden", spiceFacts{store}, true,
			subjects("view_statements", "acc-x", nil), []string{"u-bundle", "u1"}},
		{"a payment agent within the mandate", spiceFacts{store}, true,
			subjects("make_payment", "acc-x", map[string]any{"amount": 250}), []string{"bob", "u-bundle", "u1"}},
		{"a payment agent without an amount is left out", spiceFacts{store}, true,
			subjects("make_payment", "acc-x", nil), []string{"u-bundle", "u1"}},
		{"every subject of a forbidden account is denied", spiceFacts{store}, true,
			subjects("view_statements", "acc-blocked", nil), []string{}},
		{"subjects of a bundle account", spiceFacts{store}, true,
			subjects("view_statements", "acc-bundle", nil), []string{"u-bundle", "u1"}},
		{"without lookups an account only SpiceDB knows is unknown", checksOnly{spiceFacts{store}}, true,
			subjects("view_statements", "acc-x", nil), []string{}},
		{"an unknown account", spiceFacts{store}, true,
			subjects("view_statements", "acc-none", nil), []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := searchEngine(b, tc.facts)
			find := e.SearchResources
			if tc.subjectsOf {
				find = e.SearchSubjects
			}
			got, err := find(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Fatalf("got %q, want %q", ids(got), tc.want)
			}
			for _, g := range got {
				if want := map[bool]string{true: "user", false: "account"}[tc.subjectsOf]; g.Type != want {
					t.Fatalf("result %+v: type %q, want %q", g, g.Type, want)
				}
			}
		})
	}
}

// TestSearchFactsUnavailable: a search that cannot reach the relationship
// store is an error (ErrFactsUnavailable), not "nobody".
func TestSearchFactsUnavailable(t *testing.T) {
	b, store := searchSetup(t)
	ctx := context.Background()
	e := searchEngine(b, spiceFacts{store})
	_ = store.Close()
	for _, tc := range []struct {
		name string
		// lookup: the lookup failed, and the error wraps the store's; else
		// the checks failed, and the decisions keep only their message.
		lookup bool
		run    func() error
	}{
		{"resources", true, func() error {
			_, err := e.SearchResources(ctx, pdp.Request{Subject: pdp.Entity{Type: "user", ID: "u1"},
				Action: pdp.Action{Name: "view_statements"}, Resource: pdp.Entity{Type: "account"}})
			return err
		}},
		{"subjects", true, func() error {
			_, err := e.SearchSubjects(ctx, pdp.Request{Subject: pdp.Entity{Type: "user"},
				Action: pdp.Action{Name: "view_statements"}, Resource: pdp.Entity{Type: "account", ID: "acc-bundle"}})
			return err
		}},
		{"the checks of bundle entities, without lookups", false, func() error {
			_, err := searchEngine(b, checksOnly{spiceFacts{store}}).SearchResources(ctx, pdp.Request{Subject: pdp.Entity{Type: "user", ID: "u-bundle"},
				Action: pdp.Action{Name: "view_statements"}, Resource: pdp.Entity{Type: "account"}})
			return err
		}},
		{"actions", false, func() error {
			_, err := e.SearchActions(ctx, pdp.Request{Subject: pdp.Entity{Type: "user", ID: "u-bundle"},
				Resource: pdp.Entity{Type: "account", ID: "acc-bundle"}})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if !errors.Is(err, pdp.ErrFactsUnavailable) || tc.lookup != errors.Is(err, relations.ErrClosed) ||
				!strings.Contains(err.Error(), relations.ErrClosed.Error()) {
				t.Fatalf("err = %v, want ErrFactsUnavailable naming the store's error", err)
			}
		})
	}
}
