package policy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// GitConfig keeps a local checkout of a policy repository up to date. The
// checkout is reset hard to the remote branch on every pull, so local edits
// in it are discarded: it is the PDP's, not an author's, work tree.
type GitConfig struct {
	// Remote is the repository URL (https://…, file://… or a local path).
	Remote string
	// Branch to follow; "main" when empty.
	Branch string
	// Checkout is the local folder the PDP clones into.
	Checkout string
	// Subdir is the bundle root inside the repository ("" = its top).
	Subdir string
	// PullInterval is how often to fetch; 0 fetches only at start.
	PullInterval time.Duration
	// Username and Password authenticate HTTPS remotes (a token goes in
	// Password); both empty for anonymous or local remotes.
	Username, Password string
}

// Validate checks the configuration.
func (g *GitConfig) Validate() error {
	switch {
	case g.Remote == "":
		return fmt.Errorf("%w: remote is required", ErrGitConfig)
	case g.Checkout == "":
		return fmt.Errorf("%w: checkout folder is required", ErrGitConfig)
	case g.PullInterval < 0:
		return fmt.Errorf("%w: pull interval must not be negative", ErrGitConfig)
	}
	return nil
}

// Dirs is where the bundle lives inside the checkout.
func (g *GitConfig) Dirs() Dirs {
	return DirsFor(filepath.Join(g.Checkout, g.Subdir))
}

func (g *GitConfig) branch() string {
	if g.Branch == "" {
		return "main"
	}
	return g.Branch
}

func (g *GitConfig) auth() transport.AuthMethod {
	if g.Username == "" && g.Password == "" {
		return nil
	}
	user := g.Username
	if user == "" {
		user = "git"
	}
	return &githttp.BasicAuth{Username: user, Password: g.Password}
}

// sync clones the remote on first use, then fetches the branch and resets
// the checkout to it.
func (g *GitConfig) sync(ctx context.Context) error {
	if err := g.Validate(); err != nil {
		return err
	}
	ref := plumbing.NewBranchReferenceName(g.branch())
	if !exists(filepath.Join(g.Checkout, ".git")) {
		_, err := git.PlainCloneContext(ctx, g.Checkout, false, &git.CloneOptions{
			URL: g.Remote, ReferenceName: ref, SingleBranch: true, Auth: g.auth(),
		})
		if err != nil {
			return fmt.Errorf("clone %s: %w", g.Remote, err)
		}
		return nil
	}
	repo, err := git.PlainOpen(g.Checkout)
	if err != nil {
		return fmt.Errorf("open checkout %s: %w", g.Checkout, err)
	}
	if err := g.pointOriginAtRemote(repo); err != nil {
		return err
	}
	remoteRef := plumbing.NewRemoteReferenceName("origin", g.branch())
	err = repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{config.RefSpec(fmt.Sprintf("+%s:%s", ref, remoteRef))},
		Auth:       g.auth(),
		Force:      true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetch %s: %w", g.Remote, err)
	}
	target, err := repo.Reference(remoteRef, true)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", remoteRef, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return fmt.Errorf("worktree: %w", err)
	}
	if err := wt.Reset(&git.ResetOptions{Commit: target.Hash(), Mode: git.HardReset}); err != nil {
		return fmt.Errorf("reset to %s: %w", target.Hash(), err)
	}
	return nil
}

// pointOriginAtRemote makes the checkout's origin the configured remote, so
// that changing the remote in the configuration takes effect on an existing
// checkout.
func (g *GitConfig) pointOriginAtRemote(repo *git.Repository) error {
	if rem, err := repo.Remote("origin"); err == nil {
		if urls := rem.Config().URLs; len(urls) == 1 && urls[0] == g.Remote {
			return nil
		}
		if err := repo.DeleteRemote("origin"); err != nil {
			return fmt.Errorf("replace origin: %w", err)
		}
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{g.Remote}}); err != nil {
		return fmt.Errorf("set origin to %s: %w", g.Remote, err)
	}
	return nil
}
