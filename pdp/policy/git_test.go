package policy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/ciampdp/pdp/pdp/policy"
)

// sourceRepo is a policy repository made with go-git: the remote a
// Reloader clones.
type sourceRepo struct {
	dir    string // work tree
	bundle string // bundle root inside it
	repo   *git.Repository
}

func newSourceRepo(t *testing.T, branch, subdir string) *sourceRepo {
	t.Helper()
	s := &sourceRepo{dir: t.TempDir()}
	s.bundle = filepath.Join(s.dir, filepath.FromSlash(subdir))
	s.repo = initRepo(t, s.dir, branch)
	writeFile(t, filepath.Join(s.dir, "README.md"), "policy repository\n")
	s.commit(t, fixtureFiles())
	return s
}

// commit writes files (relative to the bundle root; "" removes one) and
// commits them, returning the new HEAD.
func (s *sourceRepo) commit(t *testing.T, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(s.bundle, filepath.FromSlash(name))
		if content == "" {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		writeFile(t, p, content)
	}
	return commitAll(t, s.repo, "change").String()
}

func (s *sourceRepo) head(t *testing.T) string {
	t.Helper()
	h, err := s.repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	return h.Hash().String()
}

func TestGitReloader(t *testing.T) {
	tests := []struct {
		name       string
		repoBranch string
		branch     string // GitConfig.Branch
		subdir     string
		fileURL    bool
	}{
		{name: "default branch main", repoBranch: "main"},
		{name: "named branch", repoBranch: "policies", branch: "policies"},
		{name: "bundle in a subfolder", repoBranch: "main", branch: "main", subdir: "bundles/prod"},
		{name: "file URL", repoBranch: "main", fileURL: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newSourceRepo(t, tt.repoBranch, tt.subdir)
			remote := src.dir
			if tt.fileURL {
				remote = "file://" + filepath.ToSlash(src.dir)
			}
			checkout := filepath.Join(t.TempDir(), "checkout")
			var ch changes
			r := policy.NewReloader(policy.ReloaderConfig{
				Git:      &policy.GitConfig{Remote: remote, Branch: tt.branch, Checkout: checkout, Subdir: tt.subdir},
				OnChange: ch.add,
			})
			wantBranch := tt.branch
			if wantBranch == "" {
				wantBranch = "main"
			}
			if got := r.Status().Source; got != remote+"@"+wantBranch {
				t.Errorf("Source = %q", got)
			}
			ctx := context.Background()

			// 1. The first Load clones; the version is the source's.
			if err := r.Load(ctx); err != nil {
				t.Fatalf("first Load: %v", err)
			}
			head := src.head(t)
			v1 := r.Current().Version()
			if v1.Commit != head {
				t.Fatalf("Commit = %s, want the source HEAD %s", v1.Commit, head)
			}
			if direct := loadHash(t, src.bundle); direct != v1 {
				t.Errorf("version from the checkout %v != version of the source folder %v", v1, direct)
			}

			// 2. A new commit becomes active on the next Load.
			head2 := src.commit(t, map[string]string{
				"policies/more.cedar": `permit (principal, action == Action::"read", resource);`})
			if err := r.Load(ctx); err != nil {
				t.Fatalf("Load after a commit: %v", err)
			}
			v2 := r.Current().Version()
			if v2.Commit != head2 || v2.Hash == v1.Hash || len(r.Current().Policies()) != 3 {
				t.Fatalf("after a commit: %v (%d policies), want commit %s and a new hash", v2, len(r.Current().Policies()), head2)
			}

			// 3. A broken commit is rejected; the previous version keeps serving.
			src.commit(t, map[string]string{"policies/more.cedar": "permit (principal, action, resource) when { resource.nope };"})
			err := r.Load(ctx)
			if err == nil {
				t.Fatal("Load of a broken commit succeeded")
			}
			st := r.Status()
			if r.Current().Version() != v2 || st.Failures != 1 || !strings.Contains(st.LastError, "more.cedar") {
				t.Fatalf("after a broken commit: active %v, status %+v", r.Current().Version(), st)
			}

			// 4. Fixing it activates a new version and clears the error.
			head4 := src.commit(t, map[string]string{"policies/more.cedar": "", "policies/other.cedar": `forbid (principal, action == Action::"write", resource) when { !resource.public };`})
			if err := r.Load(ctx); err != nil {
				t.Fatalf("Load of the fix: %v", err)
			}
			st = r.Status()
			if v := r.Current().Version(); v.Commit != head4 || v.Hash == v2.Hash || st.LastError != "" || st.Reloads != 3 {
				t.Fatalf("after the fix: %v, status %+v", v, st)
			}
			if got := ch.get(); len(got) != 3 || got[2] != r.Current().Version() {
				t.Errorf("OnChange calls %v", got)
			}

			// 5. Local edits in the checkout are discarded by the next pull.
			local := filepath.Join(checkout, filepath.FromSlash(tt.subdir), "policies", "app.cedar")
			writeFile(t, local, "permit (")
			if err := r.Load(ctx); err != nil {
				t.Fatalf("Load over a locally edited checkout: %v", err)
			}
			if data, _ := os.ReadFile(local); string(data) != fixturePolicies {
				t.Errorf("local edit survived the pull: %q", data)
			}
			if st := r.Status(); st.Reloads != 3 || st.LastError != "" {
				t.Errorf("unchanged remote reloaded: %+v", st)
			}

			// 6. A rollback (the branch forced back to an older commit) is followed.
			wt, err := src.repo.Worktree()
			if err != nil {
				t.Fatal(err)
			}
			if err := wt.Reset(&git.ResetOptions{Commit: plumbing.NewHash(head2), Mode: git.HardReset}); err != nil {
				t.Fatal(err)
			}
			if err := r.Load(ctx); err != nil {
				t.Fatalf("Load after a rollback: %v", err)
			}
			if v := r.Current().Version(); v != v2 {
				t.Fatalf("after a rollback to %s: %v, want %v", head2, v, v2)
			}

			// 7. An unreachable remote fails the pull; the active version stays.
			if err := os.RemoveAll(src.dir); err != nil {
				t.Fatal(err)
			}
			if err := r.Load(ctx); err == nil || !strings.Contains(err.Error(), "fetch") {
				t.Fatalf("Load from a vanished remote: %v, want a fetch error", err)
			}
			if st := r.Status(); r.Current().Version() != v2 || !strings.HasPrefix(st.LastError, "git: ") {
				t.Errorf("after a failed pull: active %v, status %+v", r.Current().Version(), st)
			}
		})
	}
}

func TestGitReloaderRun(t *testing.T) {
	src := newSourceRepo(t, "main", "")
	r := policy.NewReloader(policy.ReloaderConfig{
		Git: &policy.GitConfig{Remote: src.dir, Checkout: filepath.Join(t.TempDir(), "co"), PullInterval: 20 * time.Millisecond},
	})
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()

	head := src.commit(t, map[string]string{"policies/more.cedar": `permit (principal, action == Action::"read", resource);`})
	waitFor(t, "the pull to activate "+head, func() bool { return r.Current().Version().Commit == head })

	bad := src.commit(t, map[string]string{"policies/more.cedar": "forbid ("})
	// A pull may also race the source repository's own commit and fail on a
	// half-written ref; wait for the rejection of the broken policy itself.
	waitFor(t, "the pull to reject "+bad, func() bool { return strings.Contains(r.Status().LastError, "more.cedar") })
	if v := r.Current().Version(); v.Commit != head {
		t.Errorf("after a broken commit the active commit is %s, want %s", v.Commit, head)
	}
	if st := r.Status(); !strings.Contains(st.LastError, "more.cedar") {
		t.Errorf("LastError = %q", st.LastError)
	}
}

func TestGitReloaderSyncErrors(t *testing.T) {
	src := newSourceRepo(t, "main", "")
	tests := []struct {
		name string
		cfg  policy.GitConfig
		want string
	}{
		{"missing branch", policy.GitConfig{Remote: src.dir, Branch: "nope"}, "clone"},
		{"missing remote", policy.GitConfig{Remote: filepath.Join(src.dir, "nope")}, "clone"},
		{"invalid config", policy.GitConfig{}, "remote is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg.Remote != "" {
				cfg.Checkout = filepath.Join(t.TempDir(), "co")
			}
			r := policy.NewReloader(policy.ReloaderConfig{Git: &cfg})
			err := r.Load(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load err = %v, want one containing %q", err, tt.want)
			}
			st := r.Status()
			if r.Current() != nil || st.Failures != 1 || !strings.HasPrefix(st.LastError, "git: ") {
				t.Errorf("status %+v", st)
			}
		})
	}
}

func TestGitConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  policy.GitConfig
		want string // "" = valid
	}{
		{"valid", policy.GitConfig{Remote: "https://example.com/p.git", Checkout: "/var/lib/pdp/policies"}, ""},
		{"valid with everything", policy.GitConfig{Remote: "/srv/p", Branch: "prod", Checkout: "/tmp/co", Subdir: "b", PullInterval: time.Minute}, ""},
		{"no remote", policy.GitConfig{Checkout: "/tmp/co"}, "remote is required"},
		{"no checkout", policy.GitConfig{Remote: "/srv/p"}, "checkout folder is required"},
		{"negative interval", policy.GitConfig{Remote: "/srv/p", Checkout: "/tmp/co", PullInterval: -time.Second}, "pull interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, policy.ErrGitConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want ErrGitConfig with %q", err, tt.want)
			}
		})
	}
	g := policy.GitConfig{Checkout: t.TempDir(), Subdir: "bundles/prod"}
	writeTree(t, g.Checkout, map[string]string{"bundles/prod/policies/a.cedar": "", "bundles/prod/schema/s.cedarschema": ""})
	root := filepath.Join(g.Checkout, "bundles", "prod")
	if got, want := g.Dirs(), (policy.Dirs{Policies: filepath.Join(root, "policies"), Schema: filepath.Join(root, "schema")}); got != want {
		t.Errorf("Dirs() = %+v, want %+v", got, want)
	}
}

// TestGitReloaderStartsFromExistingCheckout: when the remote is unreachable
// at start but an earlier run left a checkout, the PDP serves that checkout
// (and reports the pull failure) instead of refusing to start.
func TestGitReloaderStartsFromExistingCheckout(t *testing.T) {
	src := newSourceRepo(t, "main", "")
	checkout := filepath.Join(t.TempDir(), "checkout")
	first := policy.NewReloader(policy.ReloaderConfig{Git: &policy.GitConfig{Remote: src.dir, Checkout: checkout}})
	if err := first.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := first.Current().Version()

	gone := policy.NewReloader(policy.ReloaderConfig{Git: &policy.GitConfig{Remote: filepath.Join(t.TempDir(), "missing"), Checkout: checkout}})
	if err := gone.Load(context.Background()); err != nil {
		t.Fatalf("load from the existing checkout: %v", err)
	}
	if got := gone.Current().Version(); got != want {
		t.Fatalf("serving %v, want the checkout's %v", got, want)
	}
	if gone.Status().Failures == 0 {
		t.Fatal("the failed pull is not counted")
	}

	empty := policy.NewReloader(policy.ReloaderConfig{Git: &policy.GitConfig{Remote: filepath.Join(t.TempDir(), "missing"), Checkout: t.TempDir()}})
	if err := empty.Load(context.Background()); err == nil {
		t.Fatal("no remote and no checkout must fail the first load")
	}
}
