package policy_test

import (
	"context"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/ciampdp/pdp/pdp/policy"
)

var hashRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func loadHash(t *testing.T, root string) policy.Version {
	t.Helper()
	b, err := policy.Load(context.Background(), policy.DirsFor(root))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !hashRE.MatchString(b.Version().Hash) {
		t.Fatalf("hash %q is not sha256:<64 hex>", b.Version().Hash)
	}
	return b.Version()
}

func TestVersionHashStable(t *testing.T) {
	files := with(fixtureFiles(),
		"policies/b.cedar", `permit (principal, action == Action::"read", resource);`,
		"policies/sub/a.cedar", `permit (principal, action == Action::"write", resource);`)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)

	// The same content written in opposite orders into two folders.
	forward, backward := t.TempDir(), t.TempDir()
	for _, n := range names {
		writeFile(t, filepath.Join(forward, n), files[n])
	}
	for _, n := range slices.Backward(names) {
		writeFile(t, filepath.Join(backward, n), files[n])
	}
	want := loadHash(t, forward)
	if got := loadHash(t, forward); got != want {
		t.Errorf("second load of the same folder: %v, want %v", got, want)
	}
	if got := loadHash(t, backward); got != want {
		t.Errorf("same files written in another order: %v, want %v", got, want)
	}
	for i := range 5 { // LoadFiles iterates its map in a random order
		b, err := policy.LoadFiles(asBytes(files))
		if err != nil {
			t.Fatal(err)
		}
		if b.Version().Hash != want.Hash {
			t.Fatalf("LoadFiles run %d: %s, want %s", i, b.Version().Hash, want.Hash)
		}
	}
}

func TestVersionHashChanges(t *testing.T) {
	base := with(fixtureFiles(), "policies/sub/extra.cedar", `permit (principal, action == Action::"read", resource);`)
	tests := []struct {
		name  string
		files map[string]string
	}{
		{"policy byte", with(base, "policies/app.cedar", strings.Replace(fixturePolicies, "Test policies", "Test policies!", 1))},
		{"policy whitespace", with(base, "policies/app.cedar", fixturePolicies+"\n")},
		{"schema comment", with(base, "schema/app.cedarschema", strings.Replace(fixtureSchema, "Test schema", "Test schema.", 1))},
		{"entities whitespace", with(base, "policies/entities.json", strings.Replace(fixtureEntities, `"Alice"`, ` "Alice"`, 1))},
		{"entities content", with(base, "policies/entities.json", strings.Replace(fixtureEntities, "Alice", "Alicia", 1))},
		{"policy file renamed", with(base, "policies/app.cedar", "", "policies/main.cedar", fixturePolicies)},
		{"policy file moved to a folder", with(base, "policies/sub/extra.cedar", "", "policies/extra.cedar", base["policies/sub/extra.cedar"])},
		{"entities file renamed", with(base, "policies/entities.json", "", "policies/app.entities.json", fixtureEntities)},
		{"schema file renamed", with(base, "schema/app.cedarschema", "", "schema/main.cedarschema", fixtureSchema)},
		{"file added", with(base, "policies/empty.cedar", "// nothing\n")},
		{"file removed", with(base, "policies/sub/extra.cedar", "")},
		{"content moved between files", with(base,
			"policies/app.cedar", fixturePolicies+base["policies/sub/extra.cedar"]+"\n",
			"policies/sub/extra.cedar", "\n")},
	}
	seen := map[string]string{loadHash(t, newBundleDir(t, base)).Hash: "base"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := loadHash(t, newBundleDir(t, tt.files)).Hash
			if prev, dup := seen[h]; dup {
				t.Fatalf("hash %s equals the hash of %q", h, prev)
			}
			seen[h] = tt.name
		})
	}
}

func TestVersionHashLineEndings(t *testing.T) {
	lf := fixtureFiles()
	crlf := map[string]string{}
	mixed := map[string]string{}
	for name, content := range lf {
		crlf[name] = strings.ReplaceAll(content, "\n", "\r\n")
		mixed[name] = content
	}
	mixed["policies/app.cedar"] = crlf["policies/app.cedar"]
	want := loadHash(t, newBundleDir(t, lf))
	for name, files := range map[string]map[string]string{"CRLF": crlf, "mixed": mixed} {
		if got := loadHash(t, newBundleDir(t, files)); got != want {
			t.Errorf("%s: %v, want the LF hash %v", name, got, want)
		}
	}
}

// commitAll stages every file of the work tree and commits it.
func commitAll(t testing.TB, repo *git.Repository, msg string) plumbing.Hash {
	t.Helper()
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	h, err := wt.Commit(msg, &git.CommitOptions{
		All:    true,
		Author: &object.Signature{Name: "test", Email: "test@example.com", When: time.Unix(1_700_000_000, 0)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// initRepo makes a Git work tree in dir whose default branch is branch.
func initRepo(t testing.TB, dir, branch string) *git.Repository {
	t.Helper()
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(branch)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func TestVersionCommit(t *testing.T) {
	tests := []struct {
		name   string
		subdir string // the bundle root inside the work tree
		git    bool
	}{
		{"not in a work tree", "", false},
		{"work tree root", "", true},
		{"folder inside a work tree", "bundles/prod", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := t.TempDir()
			root := filepath.Join(top, filepath.FromSlash(tt.subdir))
			writeTree(t, root, fixtureFiles())
			var want string
			if tt.git {
				repo := initRepo(t, top, "main")
				want = commitAll(t, repo, "first").String()
			}
			v := loadHash(t, root)
			if v.Commit != want {
				t.Fatalf("Commit = %q, want %q", v.Commit, want)
			}
			if !tt.git {
				return
			}
			// A new commit with the same content: same hash, new commit.
			repo, _ := git.PlainOpen(top)
			writeFile(t, filepath.Join(top, "README.md"), "docs\n")
			second := commitAll(t, repo, "docs").String()
			v2 := loadHash(t, root)
			if v2.Commit != second || v2.Hash != v.Hash {
				t.Errorf("after a docs commit: %v, want hash %s and commit %s", v2, v.Hash, second)
			}
		})
	}
}

// TestLoadFilesHasNoCommit: in-memory files come from no work tree, whatever
// the process's working folder is (the tests run inside this repository).
func TestLoadFilesHasNoCommit(t *testing.T) {
	b, err := policy.LoadFiles(asBytes(fixtureFiles()))
	if err != nil {
		t.Fatal(err)
	}
	if c := b.Version().Commit; c != "" {
		t.Fatalf("LoadFiles Commit = %q, want empty", c)
	}
}
