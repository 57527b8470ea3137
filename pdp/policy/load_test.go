package policy_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/ciampdp/pdp/pdp/policy"
)

func TestDirsFor(t *testing.T) {
	tests := []struct {
		name         string
		files        map[string]string
		wantPolicies string // relative to the root; "" is the root
		wantSchema   string
	}{
		{"both folders", map[string]string{"policies/a.cedar": "", "schema/s.cedarschema": ""}, "policies", "schema"},
		{"only policies folder", map[string]string{"policies/a.cedar": "", "s.cedarschema": ""}, "policies", ""},
		{"only schema folder", map[string]string{"a.cedar": "", "schema/s.cedarschema": ""}, "", "schema"},
		{"flat root", map[string]string{"a.cedar": "", "s.cedarschema": ""}, "", ""},
		{"files named like the folders", map[string]string{"policies": "", "schema": ""}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newBundleDir(t, tt.files)
			got := policy.DirsFor(root)
			want := policy.Dirs{Policies: filepath.Join(root, tt.wantPolicies), Schema: filepath.Join(root, tt.wantSchema)}
			if got != want {
				t.Fatalf("DirsFor = %+v, want %+v", got, want)
			}
			if tt.wantPolicies == tt.wantSchema && got.String() != got.Policies {
				t.Errorf("String() = %q, want the single folder %q", got.String(), got.Policies)
			}
			if tt.wantPolicies != tt.wantSchema && got.String() != got.Policies+" + "+got.Schema {
				t.Errorf("String() = %q, want both folders", got.String())
			}
		})
	}
}

// jsonSchema is fixtureSchema in the JSON form.
const jsonSchema = `{"": {
  "entityTypes": {
    "Role": {"memberOfTypes": ["Role"]},
    "User": {"memberOfTypes": ["Role"], "shape": {"type": "Record", "attributes": {
      "name": {"type": "String"}, "email": {"type": "String", "required": false}}}},
    "Doc": {"shape": {"type": "Record", "attributes": {
      "owner": {"type": "Entity", "name": "User"}, "public": {"type": "Boolean"}}}},
    "Status": {"enum": ["active", "archived"]}
  },
  "actions": {
    "view_actions": {},
    "read": {"memberOf": [{"id": "view_actions"}], "appliesTo": {"principalTypes": ["User"], "resourceTypes": ["Doc"],
      "context": {"type": "Record", "attributes": {"ip": {"type": "String", "required": false}}}}},
    "write": {"appliesTo": {"principalTypes": ["User"], "resourceTypes": ["Doc"]}}
  }
}}`

func TestLoad(t *testing.T) {
	base := fixtureFiles()
	fixtureIDs := []string{"read-public", "owner-write"}
	tests := []struct {
		name     string
		files    map[string]string
		wantIDs  []string // on success: every policy id, in file order
		wantErrs []wantLoadError
		wantIs   error // on failure, instead of wantErrs
		check    func(t *testing.T, b *policy.Bundle)
		// diskOnly marks layouts LoadFiles does not take (it reads only
		// "policies/…" and "schema/…" keys and skips no folder).
		diskOnly bool
	}{
		{name: "bundle root convention", files: base, wantIDs: fixtureIDs},
		{
			name: "flat bundle root",
			files: map[string]string{
				"app.cedarschema": fixtureSchema, "app.cedar": fixturePolicies, "entities.json": fixtureEntities,
			},
			wantIDs:  fixtureIDs,
			diskOnly: true,
		},
		{
			name: "ids from @id else file:index, several policies per file, nested folders",
			files: with(base, "policies/app.cedar", "",
				"policies/a.cedar", `permit (principal, action == Action::"read", resource);
@id("named")
permit (principal, action == Action::"write", resource);
forbid (principal, action == Action::"read", resource) when { principal.name == "x" };
`,
				"policies/sub/b.cedar", `permit (principal, action == Action::"read", resource);`,
				"policies/empty.cedar", "// no policies yet\n"),
			wantIDs: []string{"a.cedar:0", "named", "a.cedar:2", "sub/b.cedar:0"},
			check: func(t *testing.T, b *policy.Bundle) {
				for _, w := range []struct {
					id, file string
					line     int
				}{{"a.cedar:0", "a.cedar", 1}, {"named", "a.cedar", 2}, {"a.cedar:2", "a.cedar", 4}, {"sub/b.cedar:0", "sub/b.cedar", 1}} {
					p, ok := b.Policy(types.PolicyID(w.id))
					if !ok {
						t.Fatalf("Policy(%q) not found", w.id)
					}
					if p.File != w.file || p.Line != w.line {
						t.Errorf("policy %q at %s:%d, want %s:%d", w.id, p.File, p.Line, w.file, w.line)
					}
				}
			},
		},
		{
			name:     "duplicate ids across files name both locations",
			files:    with(base, "policies/z.cedar", "// again\n@id(\"read-public\")\npermit (principal, action, resource) when { principal.name == \"x\" };\n"),
			wantErrs: []wantLoadError{{file: "z.cedar", line: 2, id: "read-public", msg: "duplicate policy id (also at app.cedar:2)"}},
		},
		{
			name:     "duplicate ids in one file",
			files:    with(base, "policies/d.cedar", "@id(\"d\")\npermit (principal, action, resource) when { principal.name == \"x\" };\n@id(\"d\")\nforbid (principal, action, resource) when { principal.name == \"y\" };\n"),
			wantErrs: []wantLoadError{{file: "d.cedar", line: 3, id: "d", msg: "also at d.cedar:1"}},
		},
		{
			name: "duplicate of a policy that does not type-check",
			files: with(base,
				"policies/a.cedar", "@id(\"x\")\npermit (principal, action == Action::\"read\", resource) when { principal.nope };\n",
				"policies/b.cedar", "\n@id(\"x\")\npermit (principal, action == Action::\"read\", resource);\n"),
			wantErrs: []wantLoadError{
				{file: "a.cedar", line: 1, id: "x", msg: "`nope`"},
				{file: "b.cedar", line: 2, id: "x", msg: "duplicate policy id (also at a.cedar:1)"},
			},
		},
		{
			name: "parse error names the file and the line",
			files: with(base, "policies/bad.cedar", `@id("fine")
permit (principal, action == Action::"read", resource);

permit (principal, action == Action::"read", resource)
when { resource.public == };
`),
			wantErrs: []wantLoadError{{file: "bad.cedar", line: 5, msg: "parse error"}},
		},
		{
			name: "type errors name file, line and policy id",
			files: with(base, "policies/typed.cedar", `@id("undeclared")
permit (principal, action == Action::"read", resource)
when { principal.age > 3 };

@id("unguarded")
permit (principal, action == Action::"read", resource)
when { principal.email == "a@example.com" };

@id("guarded")
permit (principal, action == Action::"read", resource)
when { principal has email && principal.email == "a@example.com" };

permit (principal, action == Action::"read", resource)
when { context.ip == "10.0.0.1" };

@id("unknown-action")
permit (principal, action == Action::"fly", resource);
`),
			wantErrs: []wantLoadError{
				{file: "typed.cedar", line: 1, id: "undeclared", msg: "attribute `age`"},
				{file: "typed.cedar", line: 5, id: "unguarded", msg: "optional attribute `email`"},
				{file: "typed.cedar", line: 13, id: "typed.cedar:3", msg: "optional attribute `ip`"},
				{file: "typed.cedar", line: 16, id: "unknown-action", msg: "fly"},
			},
		},
		{
			name: "every error of the bundle is reported together",
			files: with(base,
				"policies/a.cedar", "permit (principal, action, resource)\nwhen { ! };\n",
				"policies/b.cedar", "@id(\"t\")\npermit (principal, action == Action::\"read\", resource) when { resource.title == \"x\" };\n",
				"policies/c.cedar", "@id(\"owner-write\")\nforbid (principal, action, resource) when { principal.name == \"x\" };\n",
				"policies/entities.json", `[{"uid": {"type": "User", "id": "bob"}, "attrs": {"name": 7}, "parents": []}]`),
			wantErrs: []wantLoadError{
				{file: "a.cedar", line: 2, msg: "parse error"},
				{file: "b.cedar", line: 1, id: "t", msg: "`title`"},
				{file: "c.cedar", line: 1, id: "owner-write", msg: "also at app.cedar:7"},
				{file: "entities.json", msg: `entities do not match the schema: entity User::"bob": attribute "name"`},
			},
		},
		{name: "no schema", files: with(base, "schema/app.cedarschema", ""), wantIs: policy.ErrNoSchema},
		{
			name:    "JSON schema",
			files:   with(base, "schema/app.cedarschema", "", "schema/app.cedarschema.json", jsonSchema),
			wantIDs: fixtureIDs,
			check: func(t *testing.T, b *policy.Bundle) {
				if got := b.ActionNames(); !slices.Equal(got, []string{"read", "view_actions", "write"}) {
					t.Errorf("ActionNames = %v", got)
				}
			},
		},
		{
			name:     "mixed schema forms",
			files:    with(base, "schema/extra.cedarschema.json", jsonSchema),
			wantErrs: []wantLoadError{{file: "extra.cedarschema.json", msg: "mixing"}},
		},
		{
			name:     "two JSON schema files",
			files:    with(base, "schema/app.cedarschema", "", "schema/a.cedarschema.json", jsonSchema, "schema/b.cedarschema.json", `{"": {"entityTypes": {}, "actions": {}}}`),
			wantErrs: []wantLoadError{{file: "b.cedarschema.json", msg: "only one JSON schema"}},
		},
		{
			name: "several .cedarschema files combine",
			files: with(base, "schema/app.cedarschema", "",
				"schema/entities.cedarschema", "entity Role in [Role];\nentity User in [Role] { name: String, email?: String };\nentity Doc { owner: User, public: Bool };\n",
				"schema/actions.cedarschema", "action view_actions;\naction read in [view_actions] appliesTo { principal: User, resource: Doc, context: { ip?: String } };\naction write appliesTo { principal: User, resource: Doc };\n",
				"schema/ns.cedarschema", "namespace Other { entity Thing; }\n"),
			wantIDs: fixtureIDs,
			check: func(t *testing.T, b *policy.Bundle) {
				if _, ok := b.EntityType("Other::Thing"); !ok {
					t.Error("Other::Thing from the third schema file is missing")
				}
			},
		},
		{
			name:     "schema parse error names the file and the line",
			files:    with(base, "schema/app.cedarschema", "entity User;\n\nentity Doc {\n  title: ,\n};\n"),
			wantErrs: []wantLoadError{{file: "app.cedarschema", line: 4, msg: "column"}},
		},
		{
			name: "declaration repeated across schema files names the file that repeats it",
			files: with(base,
				"schema/other.cedarschema", "// more types\nentity Folder;\nentity Doc;\n"),
			wantErrs: []wantLoadError{{file: "other.cedarschema", msg: `entity "Doc" is declared twice`}},
		},
		{
			name:     "schema that does not resolve",
			files:    with(base, "schema/app.cedarschema", "entity User in [Group];\n"),
			wantErrs: []wantLoadError{{file: "app.cedarschema", msg: "Group"}},
		},
		{
			name:     "entity attribute of the wrong type",
			files:    with(base, "policies/entities.json", `[{"uid": {"type": "User", "id": "bob"}, "attrs": {"name": true}, "parents": []}]`),
			wantErrs: []wantLoadError{{file: "entities.json", msg: `entities do not match the schema: entity User::"bob": attribute "name"`}},
		},
		{
			name: "every bad entity is reported, naming it",
			files: with(base, "policies/entities.json", `[
  {"uid": {"type": "User", "id": "carol"}, "attrs": {"name": "Carol"}, "parents": [{"type": "Doc", "id": "d"}]},
  {"uid": {"type": "User", "id": "bob"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Doc", "id": "d"}, "attrs": {"owner": {"__entity": {"type": "User", "id": "bob"}}, "public": true, "extra": 1}, "parents": []},
  {"uid": {"type": "User", "id": "dave"}, "attrs": {"name": "Dave"}, "parents": []}
]`),
			wantErrs: []wantLoadError{
				{file: "entities.json", msg: `entities do not match the schema: entity Doc::"d": unexpected attribute "extra"`},
				{file: "entities.json", msg: `entities do not match the schema: entity User::"bob": missing required attribute "name"`},
				{file: "entities.json", msg: `entities do not match the schema: entity User::"carol": invalid parent type "Doc"`},
			},
		},
		{
			name:     "entity of an undeclared type",
			files:    with(base, "policies/entities.json", `[{"uid": {"type": "Robot", "id": "r2"}, "attrs": {}, "parents": []}]`),
			wantErrs: []wantLoadError{{file: "entities.json", msg: `entities do not match the schema: entity Robot::"r2"`}},
		},
		{
			name:     "malformed entities JSON",
			files:    with(base, "policies/entities.json", `[{"uid": {"type": "User", "id": "bob"}`),
			wantErrs: []wantLoadError{{file: "entities.json", msg: "entities:"}},
		},
		{
			name:     "action entities in an entities file are rejected",
			files:    with(base, "policies/entities.json", `[{"uid": {"type": "Action", "id": "read"}, "attrs": {}, "parents": [{"type": "Action", "id": "view_actions"}]}]`),
			wantErrs: []wantLoadError{{file: "entities.json", msg: "action entities come from the schema"}},
		},
		{
			name: "several action entities, in a stable order",
			files: with(base, "policies/entities.json", `[
  {"uid": {"type": "Action", "id": "write"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Action", "id": "read"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Action", "id": "undeclared"}, "attrs": {}, "parents": []}
]`),
			wantErrs: []wantLoadError{
				{file: "entities.json", msg: `entity Action::"read": action entities come from the schema`},
				{file: "entities.json", msg: `entity Action::"undeclared": action entities come from the schema`},
				{file: "entities.json", msg: `entity Action::"write": action entities come from the schema`},
			},
		},
		{
			name:     "an entity defined in two files",
			files:    with(base, "policies/more.entities.json", `[{"uid": {"type": "Role", "id": "admin"}, "attrs": {}, "parents": []}]`),
			wantErrs: []wantLoadError{{file: "more.entities.json", msg: "more than one file"}},
		},
		{
			name:    "entities from several files",
			files:   with(base, "policies/team/more.entities.json", `[{"uid": {"type": "User", "id": "bob"}, "attrs": {"name": "Bob"}, "parents": []}]`),
			wantIDs: fixtureIDs,
			check: func(t *testing.T, b *policy.Bundle) {
				for _, id := range []string{"alice", "bob"} {
					if _, ok := b.Entities()[types.NewEntityUID("User", types.String(id))]; !ok {
						t.Errorf("User::%q missing", id)
					}
				}
			},
		},
		{
			name: "hidden folders and other files are ignored",
			files: with(base,
				"policies/.git/broken.cedar", "this is not cedar",
				"policies/README.md", "# policies",
				"policies/notes.json", "not json",
				"schema/nested/broken.cedarschema", "not a schema"),
			wantIDs:  fixtureIDs,
			diskOnly: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newBundleDir(t, tt.files)
			b, err := policy.Load(context.Background(), policy.DirsFor(root))
			switch {
			case tt.wantIs != nil:
				if !errors.Is(err, tt.wantIs) {
					t.Fatalf("err = %v, want %v", err, tt.wantIs)
				}
			case tt.wantErrs != nil:
				if b != nil {
					t.Errorf("Load returned a bundle with an error")
				}
				checkLoadErrors(t, err, tt.wantErrs)
			default:
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				var ids []string
				for _, p := range b.Policies() {
					ids = append(ids, string(p.ID))
				}
				if !slices.Equal(ids, tt.wantIDs) {
					t.Errorf("policy ids = %q, want %q", ids, tt.wantIDs)
				}
				n := 0
				for range b.PolicySet().All() {
					n++
				}
				if n != len(tt.wantIDs) {
					t.Errorf("PolicySet has %d policies, want %d", n, len(tt.wantIDs))
				}
				if tt.check != nil {
					tt.check(t, b)
				}
			}
			if tt.diskOnly {
				return
			}
			// LoadFiles over the same files must agree with Load.
			fb, ferr := policy.LoadFiles(asBytes(tt.files))
			if (ferr == nil) != (err == nil) {
				t.Fatalf("Load err = %v but LoadFiles err = %v", err, ferr)
			}
			if err != nil && !errors.Is(err, tt.wantIs) && ferr.Error() != err.Error() {
				t.Errorf("LoadFiles error differs from Load:\n%v\nvs\n%v", ferr, err)
			}
			if err == nil && fb.Version().Hash != b.Version().Hash {
				t.Errorf("LoadFiles hash %s != Load hash %s", fb.Version().Hash, b.Version().Hash)
			}
		})
	}
}

func TestLoadFolderErrors(t *testing.T) {
	root := newBundleDir(t, fixtureFiles())
	tests := []struct {
		name string
		dirs policy.Dirs
		want error
	}{
		{"missing policy folder", policy.Dirs{Policies: filepath.Join(root, "nope"), Schema: filepath.Join(root, "schema")}, fs.ErrNotExist},
		{"missing schema folder", policy.Dirs{Policies: filepath.Join(root, "policies"), Schema: filepath.Join(root, "nope")}, fs.ErrNotExist},
		{"cancelled context", policy.DirsFor(root), context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			if tt.want == context.Canceled {
				cancel()
			}
			defer cancel()
			b, err := policy.Load(ctx, tt.dirs)
			if !errors.Is(err, tt.want) || b != nil {
				t.Fatalf("Load = %v, %v; want error %v", b, err, tt.want)
			}
		})
	}
}

// TestLoadSkipsHiddenFiles: editors leave hidden files next to the ones being
// edited (Emacs's lock file ".#app.cedar" is a dangling link); they must
// neither fail a load nor trigger a reload.
func TestLoadSkipsHiddenFiles(t *testing.T) {
	root := newBundleDir(t, fixtureFiles())
	r := policy.NewReloader(policy.ReloaderConfig{Dirs: policy.DirsFor(root)})
	ctx := context.Background()
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{"policies/.#app.cedar", "schema/.#app.cedarschema"} {
		if err := os.Symlink("user@host.1234:1700000000", filepath.Join(root, filepath.FromSlash(link))); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "policies", ".draft.cedar"), "permit (")
	if r.CheckFolders(ctx) {
		t.Error("hidden files triggered a reload")
	}
	b, err := policy.Load(ctx, policy.DirsFor(root))
	if err != nil {
		t.Fatalf("Load with hidden files: %v", err)
	}
	if b.Version() != r.Current().Version() {
		t.Errorf("hidden files changed the version: %v, want %v", b.Version(), r.Current().Version())
	}
}
