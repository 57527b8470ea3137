package policy_test

import (
	"context"
	"slices"
	"testing"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/ciampdp/pdp/pdp/policy"
)

func loadFixture(t *testing.T, files map[string]string) *policy.Bundle {
	t.Helper()
	b, err := policy.Load(context.Background(), policy.DirsFor(newBundleDir(t, files)))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return b
}

func TestBundleAnnotations(t *testing.T) {
	b := loadFixture(t, fixtureFiles())
	tests := []struct {
		id, reason, obligation string
		file                   string
		line                   int
	}{
		{"read-public", "public_read", "", "app.cedar", 2},
		{"owner-write", "", "step_up_authentication", "app.cedar", 7},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			p, ok := b.Policy(types.PolicyID(tt.id))
			if !ok {
				t.Fatalf("Policy(%q) not found", tt.id)
			}
			if p.Reason != tt.reason || p.Obligation != tt.obligation {
				t.Errorf("reason %q obligation %q, want %q %q", p.Reason, p.Obligation, tt.reason, tt.obligation)
			}
			if p.File != tt.file || p.Line != tt.line {
				t.Errorf("at %s:%d, want %s:%d", p.File, p.Line, tt.file, tt.line)
			}
			if got := b.PolicySet().Get(p.ID); got != p.Cedar {
				t.Errorf("PolicySet().Get(%q) is not the bundle's policy", p.ID)
			}
		})
	}
	if _, ok := b.Policy("nope"); ok {
		t.Error("Policy(nope) found")
	}
	if b.Current() != b {
		t.Error("Bundle.Current() is not the bundle itself")
	}
	want := []string{"policies/app.cedar", "policies/entities.json", "schema/app.cedarschema"}
	if got := b.Files(); !slices.Equal(got, want) {
		t.Errorf("Files() = %v, want %v", got, want)
	}
}

func TestBundleEntityType(t *testing.T) {
	files := with(fixtureFiles(),
		"schema/ns.cedarschema", `entity Item;
namespace Billing { entity Invoice; entity item; }
namespace Hr { entity Invoice; entity Employee; }
`)
	b := loadFixture(t, files)
	tests := []struct {
		name   string
		want   types.EntityType
		wantOK bool
	}{
		{"User", "User", true},
		{"user", "User", true},
		{"USER", "User", true},
		{"Status", "Status", true}, // an enum type
		{"status", "Status", true},
		{"employee", "Hr::Employee", true},
		{"Hr::Employee", "Hr::Employee", true},
		// An exact match wins over the case-insensitive ones.
		{"Item", "Item", true},
		{"Billing::item", "Billing::item", true},
		// Ambiguous without an exact match: not found.
		{"item", "", false},
		{"invoice", "", false},
		{"Invoice", "", false},
		{"Billing::Invoice", "Billing::Invoice", true},
		// Qualified names match exactly only.
		{"hr::employee", "", false},
		{"Robot", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := b.EntityType(tt.name)
			if ok != tt.wantOK || (ok && got != tt.want) {
				t.Fatalf("EntityType(%q) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.wantOK)
			}
		})
	}
	if shape := b.Shape("User"); len(shape) != 2 || !shape["email"].Optional || shape["name"].Optional {
		t.Errorf("Shape(User) = %v, want name and optional email", shape)
	}
}

func TestBundleAction(t *testing.T) {
	b := loadFixture(t, with(fixtureFiles(),
		"schema/ns.cedarschema", `namespace A { entity X; action audit, review appliesTo { principal: X, resource: X }; }
namespace B { entity Y; action review appliesTo { principal: Y, resource: Y }; }
`))
	tests := []struct {
		name       string
		want       types.EntityUID
		wantOK     bool
		wantCtxLen int
	}{
		{"read", types.NewEntityUID("Action", "read"), true, 1},
		{"view_actions", types.NewEntityUID("Action", "view_actions"), true, 0},
		{"audit", types.NewEntityUID("A::Action", "audit"), true, 0},
		{"write", types.NewEntityUID("Action", "write"), true, 0},
		// review is declared in two namespaces: ambiguous.
		{"review", types.EntityUID{}, false, 0},
		{"Read", types.EntityUID{}, false, 0},
		{"fly", types.EntityUID{}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, ctx, ok := b.Action(tt.name)
			if ok != tt.wantOK || (ok && uid != tt.want) {
				t.Fatalf("Action(%q) = %v, %v; want %v, %v", tt.name, uid, ok, tt.want, tt.wantOK)
			}
			if ok && len(ctx) != tt.wantCtxLen {
				t.Errorf("context has %d attributes, want %d", len(ctx), tt.wantCtxLen)
			}
		})
	}
}

func TestBundleEntitiesAndAncestors(t *testing.T) {
	b := loadFixture(t, fixtureFiles())
	uid := types.NewEntityUID
	tests := []struct {
		name        string
		uid         types.EntityUID
		wantParents []types.EntityUID // direct, from Entities()
		wantAnc     []types.EntityUID // transitive, sorted
	}{
		{"user through two roles", uid("User", "alice"), []types.EntityUID{uid("Role", "editor")},
			[]types.EntityUID{uid("Role", "admin"), uid("Role", "editor")}},
		{"role", uid("Role", "editor"), []types.EntityUID{uid("Role", "admin")}, []types.EntityUID{uid("Role", "admin")}},
		{"top role", uid("Role", "admin"), nil, nil},
		{"schema action with its group", uid("Action", "read"), []types.EntityUID{uid("Action", "view_actions")},
			[]types.EntityUID{uid("Action", "view_actions")}},
		{"schema action without group", uid("Action", "write"), nil, nil},
		{"action group", uid("Action", "view_actions"), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := b.Entities()[tt.uid]
			if !ok {
				t.Fatalf("%v not in Entities()", tt.uid)
			}
			if e.UID != tt.uid {
				t.Errorf("entity UID %v, want %v", e.UID, tt.uid)
			}
			parents := slices.Collect(e.Parents.All())
			slices.SortFunc(parents, func(a, b types.EntityUID) int { return compareUID(a, b) })
			if !slices.Equal(parents, tt.wantParents) {
				t.Errorf("parents %v, want %v", parents, tt.wantParents)
			}
			if got := b.Ancestors(tt.uid); !slices.Equal(got, tt.wantAnc) {
				t.Errorf("Ancestors = %v, want %v", got, tt.wantAnc)
			}
		})
	}
	if got := b.Ancestors(uid("User", "nobody")); got != nil {
		t.Errorf("Ancestors of an unknown entity = %v, want nil", got)
	}
	if n := len(b.Entities()); n != 3+3 {
		t.Errorf("Entities() has %d entries, want 3 from the file and 3 actions", n)
	}
}

func TestAncestorsCycle(t *testing.T) {
	// Entity data may contain a cycle; the closure must end and exclude the
	// entity itself.
	b := loadFixture(t, with(fixtureFiles(), "policies/entities.json", `[
  {"uid": {"type": "Role", "id": "a"}, "attrs": {}, "parents": [{"type": "Role", "id": "b"}]},
  {"uid": {"type": "Role", "id": "b"}, "attrs": {}, "parents": [{"type": "Role", "id": "c"}]},
  {"uid": {"type": "Role", "id": "c"}, "attrs": {}, "parents": [{"type": "Role", "id": "a"}]}
]`))
	got := b.Ancestors(types.NewEntityUID("Role", "a"))
	want := []types.EntityUID{types.NewEntityUID("Role", "b"), types.NewEntityUID("Role", "c")}
	if !slices.Equal(got, want) {
		t.Fatalf("Ancestors(a) = %v, want %v", got, want)
	}
}

func compareUID(a, b types.EntityUID) int {
	switch as, bs := a.String(), b.String(); {
	case as < bs:
		return -1
	case as > bs:
		return 1
	}
	return 0
}
