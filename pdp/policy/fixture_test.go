package policy_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/policy"
)

// The bundle most tests start from: a schema with a role hierarchy, an
// optional attribute, an action group and a context, two policies that use
// the engine annotations, and entities.
const (
	fixtureSchema = `// Test schema.
entity Role in [Role];
entity User in [Role] { name: String, email?: String };
entity Doc { owner: User, public: Bool };
entity Status enum ["active", "archived"];
action view_actions;
action read in [view_actions] appliesTo { principal: User, resource: Doc, context: { ip?: String } };
action write appliesTo { principal: User, resource: Doc };
`
	fixturePolicies = `// Test policies.
@id("read-public")
@reason("public_read")
permit (principal, action == Action::"read", resource)
when { resource.public };

@id("owner-write")
@obligation("step_up_authentication")
permit (principal, action == Action::"write", resource)
when { resource.owner == principal };
`
	fixtureEntities = `[
  {"uid": {"type": "Role", "id": "admin"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Role", "id": "editor"}, "attrs": {}, "parents": [{"type": "Role", "id": "admin"}]},
  {"uid": {"type": "User", "id": "alice"}, "attrs": {"name": "Alice"}, "parents": [{"type": "Role", "id": "editor"}]}
]
`
)

// fixtureFiles is the fixture bundle, keyed by path relative to the bundle
// root (the form LoadFiles takes and writeTree writes).
func fixtureFiles() map[string]string {
	return map[string]string{
		"schema/app.cedarschema": fixtureSchema,
		"policies/app.cedar":     fixturePolicies,
		"policies/entities.json": fixtureEntities,
	}
}

// with returns a copy of base with the given files set; an empty content
// removes the file.
func with(base map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(base)+len(kv)/2)
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(out, kv[i])
			continue
		}
		out[kv[i]] = kv[i+1]
	}
	return out
}

// mtimeSeq hands out distinct modification times, so that the Reloader's
// fingerprint sees every write even on file systems with coarse mtimes.
var mtimeSeq atomic.Int64

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(1_700_000_000+mtimeSeq.Add(1), 0)
	if err := os.Chtimes(path, mt, mt); err != nil {
		t.Fatal(err)
	}
}

// writeTree writes files (paths relative to root, slash-separated) under
// root.
func writeTree(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		writeFile(t, filepath.Join(root, filepath.FromSlash(name)), content)
	}
}

// newBundleDir writes files into a fresh temporary folder and returns it.
func newBundleDir(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	writeTree(t, root, files)
	return root
}

func asBytes(files map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(files))
	for k, v := range files {
		out[k] = []byte(v)
	}
	return out
}

// loadErrors unwraps err into LoadErrors, failing the test otherwise.
func loadErrors(t testing.TB, err error) policy.LoadErrors {
	t.Helper()
	var les policy.LoadErrors
	if !errors.As(err, &les) {
		t.Fatalf("error is %T (%v), want policy.LoadErrors", err, err)
	}
	return les
}

// wantLoadError describes one expected LoadError; zero fields are not
// checked except that msg must always be found in the error text.
type wantLoadError struct {
	file string
	line int
	id   string
	msg  string
}

func checkLoadErrors(t testing.TB, err error, want []wantLoadError) {
	t.Helper()
	if err == nil {
		t.Fatalf("Load succeeded, want %d errors", len(want))
	}
	les := loadErrors(t, err)
	if len(les) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(les), len(want), err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(les) {
		t.Errorf("Error() has %d lines for %d errors:\n%s", len(lines), len(les), err)
	}
	for i, w := range want {
		got := les[i]
		if w.file != "" && got.File != w.file {
			t.Errorf("error %d: file %q, want %q (%v)", i, got.File, w.file, got)
		}
		if w.line != 0 && got.Line != w.line {
			t.Errorf("error %d: line %d, want %d (%v)", i, got.Line, w.line, got)
		}
		if w.id != "" && got.PolicyID != w.id {
			t.Errorf("error %d: policy id %q, want %q (%v)", i, got.PolicyID, w.id, got)
		}
		if !strings.Contains(got.Error(), w.msg) {
			t.Errorf("error %d: %q does not contain %q", i, got.Error(), w.msg)
		}
		if w.file != "" && !strings.HasPrefix(got.Error(), w.file) {
			t.Errorf("error %d: %q does not start with the file name %q", i, got.Error(), w.file)
		}
	}
}
