package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// policyRepo is a local Git repository holding a bundle: the remote the
// server follows in the Git test. No network is involved.
type policyRepo struct {
	dir  string
	repo *git.Repository
}

func newPolicyRepo(t *testing.T, bundle string) *policyRepo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "remote")
	if err := os.CopyFS(dir, os.DirFS(bundle)); err != nil {
		t.Fatal(err)
	}
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &policyRepo{dir: dir, repo: repo}
}

// commit commits every file of the work tree and returns the commit.
func (r *policyRepo) commit(t *testing.T, msg string) string {
	t.Helper()
	wt, err := r.repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	h, err := wt.Commit(msg, &git.CommitOptions{
		Author: &object.Signature{Name: "Policy Author", Email: "author@example.com", When: time.Now()},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// TestServeGit follows a local repository: the served version names the
// repository's HEAD, and a new commit becomes active after a pull.
func TestServeGit(t *testing.T) {
	t.Parallel()
	remote := newPolicyRepo(t, todoDir)
	first := remote.commit(t, "todo policies")

	checkout := filepath.Join(t.TempDir(), "checkout")
	cfg := filepath.Join(t.TempDir(), "pdp.yaml")
	writeFile(t, cfg, strings.Join([]string{
		"policy:",
		"  git:",
		"    remote: " + remote.dir,
		"    branch: main",
		"    checkout: " + checkout,
		"    pull_interval: 50ms",
		"",
	}, "\n"))
	s := startServer(t, "--config", cfg)

	st := s.policies(t)
	if st.Active.Commit != first {
		t.Fatalf("active commit = %q, want the repository's HEAD %s", st.Active.Commit, first)
	}
	if !strings.Contains(st.Source, remote.dir) {
		t.Errorf("source = %q, want the remote", st.Source)
	}
	createByBeth := evaluation(beth, "can_create_todo", mortyDoc)
	if d := s.evaluate(t, createByBeth); d.Decision {
		t.Fatal("a viewer may create todos before the commit")
	}

	writeFile(t, filepath.Join(remote.dir, "policies", "viewers.cedar"), `@id("todo-create-viewer")
permit (principal in Role::"viewer", action == Action::"can_create_todo", resource);
`)
	second := remote.commit(t, "viewers may create todos")
	eventually(t, "the new commit is active", func() bool {
		st = s.policies(t)
		return st.Active.Commit == second
	})
	if d := s.evaluate(t, createByBeth); !d.Decision || d.Context.PolicyVersion != st.Active.Hash {
		t.Errorf("after the commit: decision %t by %s, want true by %s", d.Decision, d.Context.PolicyVersion, st.Active.Hash)
	}
}
