// Package audit is the auditor's side of the decision trail: the archive of
// every policy version the PDP served, replay of recorded decisions under
// the version they name (and what-if under a proposed one), queries over
// the records, and explanations of single decisions in words.
//
// It reads records through small interfaces, so it works the same over the
// file trail and the PostgreSQL trail, in the CLI and behind the auditor
// HTTP endpoints.
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/trail"
)

// ErrNotArchived is returned for a policy version the archive does not hold.
var ErrNotArchived = errors.New("audit: policy version not in the archive")

// archived is the file format of one archived version: its sources, keyed
// as policy.LoadFiles takes them, and its version (hash and Git commit).
type archived struct {
	Version policy.Version    `json:"version"`
	Files   map[string]string `json:"files"`
}

// DirArchive keeps every served policy version in a folder, one JSON file
// per version named by its content hash. Versions are written once (fsync,
// then rename, then fsync of the folder) and never changed; reading one
// back recomputes its hash, so a tampered archive entry is refused.
type DirArchive struct {
	dir string

	mu     sync.Mutex
	loaded map[string]*policy.Bundle
}

// OpenDirArchive opens (creating) the archive folder dir.
func OpenDirArchive(dir string) (*DirArchive, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("audit: policy archive: %w", err)
	}
	return &DirArchive{dir: dir, loaded: map[string]*policy.Bundle{}}, nil
}

// Dir is the archive's folder.
func (a *DirArchive) Dir() string { return a.dir }

func (a *DirArchive) path(hash string) (string, error) {
	hex, ok := strings.CutPrefix(hash, "sha256:")
	if !ok || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", fmt.Errorf("audit: malformed policy version hash %q", hash)
	}
	return filepath.Join(a.dir, hex+".json"), nil
}

// Put archives b's version unless the archive holds it already. It returns
// once the version is durable.
func (a *DirArchive) Put(b *policy.Bundle) error {
	v := b.Version()
	p, err := a.path(v.Hash)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	ar := archived{Version: v, Files: make(map[string]string, len(b.Sources()))}
	for name, data := range b.Sources() {
		ar.Files[name] = string(data)
	}
	data, err := json.MarshalIndent(ar, "", "  ")
	if err != nil {
		return fmt.Errorf("audit: archive %s: %w", v.Hash, err)
	}
	tmp, err := os.CreateTemp(a.dir, ".put-*")
	if err != nil {
		return fmt.Errorf("audit: archive %s: %w", v.Hash, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("audit: archive %s: %w", v.Hash, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("audit: archive %s: %w", v.Hash, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("audit: archive %s: %w", v.Hash, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("audit: archive %s: %w", v.Hash, err)
	}
	return trail.SyncDir(a.dir)
}

// Get rebuilds the bundle of version hash from the archive.
func (a *DirArchive) Get(hash string) (*policy.Bundle, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if b, ok := a.loaded[hash]; ok {
		return b, nil
	}
	p, err := a.path(hash)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (looked in %s)", ErrNotArchived, hash, a.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: policy archive: %w", err)
	}
	var ar archived
	if err := json.Unmarshal(data, &ar); err != nil {
		return nil, fmt.Errorf("audit: policy archive %s: %w", p, err)
	}
	b, err := ar.bundle(hash)
	if err != nil {
		return nil, err
	}
	a.loaded[hash] = b
	return b, nil
}

// bundle rebuilds the archived version and checks it is the one named.
func (ar archived) bundle(hash string) (*policy.Bundle, error) {
	files := make(map[string][]byte, len(ar.Files))
	for name, text := range ar.Files {
		files[name] = []byte(text)
	}
	b, err := policy.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("audit: archived policy version %s does not load: %w", hash, err)
	}
	if got := b.Version().Hash; got != hash {
		return nil, fmt.Errorf("audit: archived policy version %s was altered: its content hashes to %s", hash, got)
	}
	return b.WithCommit(ar.Version.Commit), nil
}

// Versions lists the archived version hashes.
func (a *DirArchive) Versions() ([]string, error) {
	ents, err := os.ReadDir(a.dir)
	if err != nil {
		return nil, fmt.Errorf("audit: policy archive: %w", err)
	}
	var out []string
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok && !strings.HasPrefix(name, ".") {
			out = append(out, "sha256:"+name)
		}
	}
	return out, nil
}
