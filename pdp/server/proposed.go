package server

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/ciampdp/pdp/pdp/policy"
)

// LoadProposed loads the bundle a what-if replays under: a folder, else a
// Git revision of repo whose root folder holds policies/ and schema/.
func LoadProposed(ctx context.Context, arg, repo, root string) (*policy.Bundle, error) {
	if fi, err := os.Stat(arg); err == nil && fi.IsDir() {
		b, err := policy.Load(ctx, policy.DirsFor(arg))
		if err != nil {
			return nil, fmt.Errorf("proposed policies in %s do not load:\n%w", arg, err)
		}
		return b, nil
	}
	r, err := git.PlainOpenWithOptions(repo, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, fmt.Errorf("--policies %q is neither a folder nor a revision of a Git repository at %s: %w", arg, repo, err)
	}
	h, err := r.ResolveRevision(plumbing.Revision(arg))
	if err != nil {
		return nil, fmt.Errorf("--policies %q: no such folder, and no such revision in %s: %w", arg, repo, err)
	}
	c, err := r.CommitObject(*h)
	if err != nil {
		return nil, fmt.Errorf("--policies %q: %w", arg, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("--policies %q: %w", arg, err)
	}
	prefix := path.Clean(filepath.ToSlash(root))
	if prefix == "." {
		prefix = ""
	} else {
		prefix += "/"
	}
	files := map[string][]byte{}
	err = tree.Files().ForEach(func(f *object.File) error {
		rel, ok := strings.CutPrefix(f.Name, prefix)
		if !ok || !(strings.HasPrefix(rel, "policies/") || strings.HasPrefix(rel, "schema/")) {
			return nil
		}
		text, err := f.Contents()
		if err != nil {
			return err
		}
		files[rel] = []byte(text)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("--policies %q: read the tree: %w", arg, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("--policies %q: revision %s has no policies/ or schema/ under %q", arg, h, root)
	}
	b, err := policy.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("proposed policies at %s (%s) do not load:\n%w", arg, h, err)
	}
	return b.WithCommit(h.String()), nil
}
