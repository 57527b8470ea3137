package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ReloaderConfig configures a Reloader.
type ReloaderConfig struct {
	// Dirs are the folders to load; ignored when Git is set (the bundle
	// root is then Git.Checkout/Git.Subdir).
	Dirs Dirs
	// Interval is how often the folders are checked for changes; 0 turns
	// folder watching off.
	Interval time.Duration
	// Git, when set, keeps a local checkout of a remote up to date and
	// loads from it.
	Git    *GitConfig
	Logger *slog.Logger
	// Prepare, if set, is called with a new version that loaded, before it
	// becomes active: it readies what the version needs outside the bundle
	// (its SpiceDB schema, say). An error rejects the version like a load
	// error: the active one keeps serving. It runs under the reloader's
	// lock, so it must not call the Reloader (Status would wait for that
	// lock forever): what it needs of the reloader is in its arguments.
	Prepare func(ctx context.Context, b *Bundle, c Candidate) error
	// OnChange, if set, is called after a new version became active. It
	// runs under the reloader's lock too: it must not call the Reloader.
	OnChange func(Version)
}

// Candidate is what Prepare is told about a version besides its bundle.
type Candidate struct {
	// Source is where the version came from: the folders, or the Git
	// remote and branch (Status().Source).
	Source string
	// Previous is the version active until now; zero for the first one.
	Previous Version
}

// Reloader owns the active bundle. It loads and validates new versions off
// the decision path and swaps them in atomically; a version that fails to
// load is rejected, the previous one keeps serving, and the failure shows in
// Status.
type Reloader struct {
	cfg    ReloaderConfig
	log    *slog.Logger
	cur    atomic.Pointer[Bundle]
	syncMu sync.Mutex // serialises Git pulls (kept apart from mu so a slow fetch never blocks Status)
	mu     sync.Mutex // serialises loads and guards the fields below
	status Status
	finger string
}

// pull brings the Git checkout up to date; one pull at a time.
func (r *Reloader) pull(ctx context.Context) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	return r.cfg.Git.sync(ctx)
}

// NewReloader returns a Reloader; call Load (or Run) to load the first
// version.
func NewReloader(cfg ReloaderConfig) *Reloader {
	r := &Reloader{cfg: cfg, log: cfg.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.status.Source = cfg.Dirs.String()
	if cfg.Git != nil {
		r.status.Source = cfg.Git.Remote + "@" + cfg.Git.branch()
	}
	return r
}

// Current returns the active bundle, or nil before the first good load.
func (r *Reloader) Current() *Bundle { return r.cur.Load() }

// Status reports the active version and the last reload outcome.
func (r *Reloader) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Load loads the folders now (pulling first when Git is configured) and
// activates the result when its content changed. It returns the load error,
// if any; the previously active version stays active on error.
func (r *Reloader) Load(ctx context.Context) error {
	if r.cfg.Git != nil {
		if err := r.pull(ctx); err != nil {
			r.fail(fmt.Errorf("git: %w", err))
			// A checkout from an earlier run still serves: the remote being
			// down at start must not stop the PDP from deciding.
			if r.Current() != nil || !exists(filepath.Join(r.cfg.Git.Checkout, ".git")) {
				return err
			}
			r.log.Warn("loading the existing checkout; the remote could not be reached", "checkout", r.cfg.Git.Checkout, "err", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg.Git != nil {
		r.cfg.Dirs = r.cfg.Git.Dirs()
	}
	r.finger = fingerprint(r.cfg.Dirs)
	return r.loadLocked(ctx)
}

func (r *Reloader) loadLocked(ctx context.Context) error {
	r.status.LastAttempt = time.Now().UTC()
	b, err := Load(ctx, r.cfg.Dirs)
	if err == nil && r.cfg.Prepare != nil {
		if cur := r.cur.Load(); cur == nil || cur.Version() != b.Version() {
			c := Candidate{Source: r.status.Source}
			if cur != nil {
				c.Previous = cur.Version()
			}
			if perr := r.cfg.Prepare(ctx, b, c); perr != nil {
				err = fmt.Errorf("preparing version %s: %w", b.Version().Hash, perr)
			}
		}
	}
	if err != nil {
		r.status.Failures++
		r.status.LastError = err.Error()
		r.status.LastErrorAt = r.status.LastAttempt
		r.log.Error("policy version rejected; the active version keeps serving",
			"source", r.status.Source, "active", r.status.Active.Hash, "err", err)
		return err
	}
	r.status.LastError = ""
	if cur := r.cur.Load(); cur != nil && cur.Version() == b.Version() {
		return nil
	}
	r.cur.Store(b)
	r.status.Active = b.Version()
	r.status.LoadedAt = b.LoadedAt()
	r.status.Policies = len(b.Policies())
	r.status.Reloads++
	r.log.Info("policy version active", "hash", b.Version().Hash, "commit", b.Version().Commit,
		"policies", len(b.Policies()), "source", r.status.Source)
	if r.cfg.OnChange != nil {
		r.cfg.OnChange(b.Version())
	}
	return nil
}

func (r *Reloader) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.LastAttempt = time.Now().UTC()
	r.status.Failures++
	r.status.LastError = err.Error()
	r.status.LastErrorAt = r.status.LastAttempt
	r.log.Error("policy reload failed; the active version keeps serving", "err", err)
}

// Run watches for changes until ctx is done: the folders every Interval
// (reloading only when a file's name, size or modification time changed)
// and, with Git, the remote every Git.PullInterval.
func (r *Reloader) Run(ctx context.Context) {
	var folder, pull <-chan time.Time
	if r.cfg.Interval > 0 {
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		folder = t.C
	}
	if r.cfg.Git != nil && r.cfg.Git.PullInterval > 0 {
		t := time.NewTicker(r.cfg.Git.PullInterval)
		defer t.Stop()
		pull = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-folder:
			r.CheckFolders(ctx)
		case <-pull:
			if err := r.pull(ctx); err != nil {
				r.fail(fmt.Errorf("git: %w", err))
				continue
			}
			r.CheckFolders(ctx)
		}
	}
}

// CheckFolders reloads when the folders changed since the last load. It
// reports whether a load was attempted.
func (r *Reloader) CheckFolders(ctx context.Context) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg.Git != nil {
		r.cfg.Dirs = r.cfg.Git.Dirs()
	}
	f := fingerprint(r.cfg.Dirs)
	if f == r.finger {
		return false
	}
	r.finger = f
	_ = r.loadLocked(ctx)
	return true
}

// fingerprint summarises the bundle files' names, sizes and modification
// times: cheap enough to run every second.
func fingerprint(d Dirs) string {
	var parts []string
	walk := func(root string, recursive bool) {
		_ = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				parts = append(parts, path+"!"+err.Error())
				return nil
			}
			if e.IsDir() {
				if path != root && (!recursive || strings.HasPrefix(e.Name(), ".")) {
					return filepath.SkipDir
				}
				return nil
			}
			if _, ok := classify(path); !ok || strings.HasPrefix(e.Name(), ".") {
				return nil
			}
			// Stat, not e.Info: follow links, so that a Kubernetes volume
			// update (which swaps the "..data" link the per-file links go
			// through) changes the fingerprint.
			fi, err := os.Stat(path)
			if err != nil {
				parts = append(parts, path+"!"+err.Error())
				return nil
			}
			parts = append(parts, fmt.Sprintf("%s|%d|%d", path, fi.Size(), fi.ModTime().UnixNano()))
			return nil
		})
	}
	walk(d.Policies, true)
	walk(d.Schema, false)
	sort.Strings(parts)
	return strings.Join(parts, "\n")
}

// ErrGitConfig reports an unusable Git configuration.
var ErrGitConfig = errors.New("invalid git configuration")

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
