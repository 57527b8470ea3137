package policy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/policy"
)

// changes records the versions a Reloader reports through OnChange.
type changes struct {
	mu   sync.Mutex
	list []policy.Version
}

func (c *changes) add(v policy.Version) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.list = append(c.list, v)
}

func (c *changes) get() []policy.Version {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]policy.Version(nil), c.list...)
}

func TestReloaderFirstLoad(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{"good bundle", fixtureFiles(), ""},
		{"broken bundle", with(fixtureFiles(), "policies/bad.cedar", "permit ("), "bad.cedar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newBundleDir(t, tt.files)
			var ch changes
			r := policy.NewReloader(policy.ReloaderConfig{Dirs: policy.DirsFor(root), OnChange: ch.add})
			if r.Current() != nil {
				t.Fatal("Current() before Load is not nil")
			}
			err := r.Load(context.Background())
			st := r.Status()
			if st.Source != policy.DirsFor(root).String() {
				t.Errorf("Source = %q", st.Source)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load err = %v, want one naming %s", err, tt.wantErr)
				}
				if r.Current() != nil || st.Failures != 1 || st.Reloads != 0 || !strings.Contains(st.LastError, tt.wantErr) ||
					st.LastErrorAt.IsZero() || len(ch.get()) != 0 {
					t.Fatalf("after a failed first load: current %v, status %+v, changes %v", r.Current(), st, ch.get())
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			b := r.Current()
			if b == nil {
				t.Fatal("Current() is nil after Load")
			}
			if st.Active != b.Version() || st.Reloads != 1 || st.Failures != 0 || st.Policies != 2 ||
				st.LastError != "" || st.LoadedAt != b.LoadedAt() || st.LastAttempt.IsZero() {
				t.Errorf("Status = %+v", st)
			}
			if got := ch.get(); len(got) != 1 || got[0] != b.Version() {
				t.Errorf("OnChange calls %v, want [%v]", got, b.Version())
			}
			// Loading unchanged content again keeps the bundle and calls nothing.
			if err := r.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			if r.Current() != b || r.Status().Reloads != 1 || len(ch.get()) != 1 {
				t.Errorf("a load of unchanged content swapped the bundle: status %+v", r.Status())
			}
		})
	}
}

// TestReloaderCheckFolders walks a Reloader through a sequence of edits; each
// step says whether CheckFolders must attempt a load, whether a new version
// must become active, and what the last error must name.
func TestReloaderCheckFolders(t *testing.T) {
	good2 := fixturePolicies + "\n@id(\"extra\")\npermit (principal, action == Action::\"read\", resource);\n"
	good3 := good2 + "\n@id(\"extra2\")\nforbid (principal, action == Action::\"write\", resource) when { !resource.public };\n"
	steps := []struct {
		name        string
		edit        func(t *testing.T, root string)
		wantAttempt bool
		wantSwap    bool
		wantErr     string // "" = LastError must be empty
		wantIDs     int
	}{
		{"nothing changed", func(*testing.T, string) {}, false, false, "", 2},
		{"policy added", func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "policies/app.cedar"), good2)
		}, true, true, "", 3},
		{"nothing changed again", func(*testing.T, string) {}, false, false, "", 3},
		{"unrelated file", func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "policies/README.md"), "# notes\n")
		}, false, false, "", 3},
		{"broken policy", func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "policies/broken.cedar"), "@id(\"b\")\npermit (principal, action == Action::\"read\", resource) when { resource.nope };\n")
		}, true, false, "broken.cedar:1", 3},
		{"broken version is not retried", func(*testing.T, string) {}, false, false, "broken.cedar:1", 3},
		{"broken entities too", func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "policies/entities.json"), "[")
		}, true, false, "entities.json", 3},
		{"fixed", func(t *testing.T, root string) {
			if err := os.Remove(filepath.Join(root, "policies/broken.cedar")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(root, "policies/entities.json"), fixtureEntities)
			writeFile(t, filepath.Join(root, "policies/app.cedar"), good3)
		}, true, true, "", 4},
		{"touched without a content change", func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "policies/app.cedar"), good3)
		}, true, false, "", 4},
		{"schema changed", func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "schema/app.cedarschema"), fixtureSchema+"entity Extra;\n")
		}, true, true, "", 4},
		{"schema removed", func(t *testing.T, root string) {
			if err := os.Remove(filepath.Join(root, "schema/app.cedarschema")); err != nil {
				t.Fatal(err)
			}
		}, true, false, "no Cedar schema", 4},
	}

	root := newBundleDir(t, fixtureFiles())
	var ch changes
	r := policy.NewReloader(policy.ReloaderConfig{Dirs: policy.DirsFor(root), OnChange: ch.add})
	ctx := context.Background()
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		before, st0 := r.Current(), r.Status()
		s.edit(t, root)
		if got := r.CheckFolders(ctx); got != s.wantAttempt {
			t.Fatalf("%s: CheckFolders = %v, want %v", s.name, got, s.wantAttempt)
		}
		cur, st := r.Current(), r.Status()
		if swapped := cur != before; swapped != s.wantSwap {
			t.Fatalf("%s: swapped = %v, want %v (status %+v)", s.name, swapped, s.wantSwap, st)
		}
		if len(cur.Policies()) != s.wantIDs {
			t.Errorf("%s: active bundle has %d policies, want %d", s.name, len(cur.Policies()), s.wantIDs)
		}
		wantReloads, wantFailures := st0.Reloads, st0.Failures
		switch {
		case s.wantSwap:
			wantReloads++
			if cur.Version().Hash == before.Version().Hash {
				t.Errorf("%s: new bundle with the old hash", s.name)
			}
			if got := ch.get(); got[len(got)-1] != cur.Version() {
				t.Errorf("%s: last OnChange %v, want %v", s.name, got[len(got)-1], cur.Version())
			}
		case s.wantAttempt && s.wantErr != "":
			wantFailures++
		}
		if st.Reloads != wantReloads || st.Failures != wantFailures {
			t.Errorf("%s: reloads/failures %d/%d, want %d/%d", s.name, st.Reloads, st.Failures, wantReloads, wantFailures)
		}
		if int(st.Reloads) != len(ch.get()) {
			t.Errorf("%s: %d reloads but %d OnChange calls", s.name, st.Reloads, len(ch.get()))
		}
		if st.Active != cur.Version() || st.Policies != len(cur.Policies()) {
			t.Errorf("%s: status shows %v/%d, active is %v/%d", s.name, st.Active, st.Policies, cur.Version(), len(cur.Policies()))
		}
		if s.wantErr == "" && st.LastError != "" {
			t.Errorf("%s: LastError = %q, want none", s.name, st.LastError)
		}
		if s.wantErr != "" && !strings.Contains(st.LastError, s.wantErr) {
			t.Errorf("%s: LastError = %q, want it to name %q", s.name, st.LastError, s.wantErr)
		}
		if s.wantAttempt && st.LastAttempt.Before(st0.LastAttempt) {
			t.Errorf("%s: LastAttempt went back", s.name)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReloaderRun(t *testing.T) {
	root := newBundleDir(t, fixtureFiles())
	r := policy.NewReloader(policy.ReloaderConfig{Dirs: policy.DirsFor(root), Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	first := r.Current().Version()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()

	writeFile(t, filepath.Join(root, "policies/more.cedar"), `permit (principal, action == Action::"read", resource);`)
	waitFor(t, "Run to activate the new version", func() bool { return r.Current().Version() != first })
	if n := len(r.Current().Policies()); n != 3 {
		t.Errorf("active bundle has %d policies, want 3", n)
	}

	writeFile(t, filepath.Join(root, "policies/more.cedar"), "permit (")
	waitFor(t, "Run to reject the broken version", func() bool { return r.Status().Failures == 1 })
	if st := r.Status(); !strings.Contains(st.LastError, "more.cedar") || len(r.Current().Policies()) != 3 {
		t.Errorf("after a broken edit: status %+v", st)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

// TestReloaderConcurrentReaders reads the active bundle from several
// goroutines while versions are swapped; run it with -race.
func TestReloaderConcurrentReaders(t *testing.T) {
	root := newBundleDir(t, fixtureFiles())
	r := policy.NewReloader(policy.ReloaderConfig{Dirs: policy.DirsFor(root)})
	ctx := context.Background()
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				b := r.Current()
				n := len(b.Policies())
				for _, p := range b.Policies() {
					if q, ok := b.Policy(p.ID); !ok || q != p {
						t.Errorf("policy %q of the active bundle not found in it", p.ID)
						return
					}
				}
				if n < 2 || !hashRE.MatchString(b.Version().Hash) {
					t.Errorf("inconsistent bundle: %d policies, version %v", n, b.Version())
					return
				}
				_ = r.Status()
			}
		})
	}
	const rounds = 20
	for i := range rounds {
		extra := fmt.Sprintf("@id(\"round-%d\")\npermit (principal, action == Action::\"read\", resource);\n", i)
		writeFile(t, filepath.Join(root, "policies/round.cedar"), extra)
		if i%5 == 4 { // now and then a broken version
			writeFile(t, filepath.Join(root, "policies/round.cedar"), "forbid (")
		}
		r.CheckFolders(ctx)
	}
	close(stop)
	wg.Wait()
	st := r.Status()
	if st.Reloads+st.Failures != rounds+1 || st.Failures != rounds/5 {
		t.Errorf("after %d rounds: %+v", rounds, st)
	}
}

// writeAtomicDir lays files out the way the kubelet writes a ConfigMap or
// Secret volume: the files live in a hidden timestamped folder, "..data"
// links to it, and each name in dir is a link to "..data/<name>". An update
// writes a new hidden folder and swaps the "..data" link atomically; the
// per-file links never change.
func writeAtomicDir(t *testing.T, dir, version string, files map[string]string) {
	t.Helper()
	hidden := filepath.Join(dir, "..v"+version)
	for name, content := range files {
		writeFile(t, filepath.Join(hidden, name), content)
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(hidden), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

func TestReloaderConfigMapVolume(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"schema/app.cedarschema": fixtureSchema})
	policies := filepath.Join(root, "policies")
	writeAtomicDir(t, policies, "1", map[string]string{"app.cedar": fixturePolicies, "entities.json": fixtureEntities})

	r := policy.NewReloader(policy.ReloaderConfig{Dirs: policy.DirsFor(root)})
	ctx := context.Background()
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Current().Policies()); n != 2 {
		t.Fatalf("%d policies loaded through the links, want 2", n)
	}
	first := r.Current().Version()

	writeAtomicDir(t, policies, "2", map[string]string{
		"app.cedar":     fixturePolicies + "\n@id(\"v2\")\npermit (principal, action == Action::\"read\", resource);\n",
		"entities.json": fixtureEntities,
	})
	if !r.CheckFolders(ctx) {
		t.Fatal("CheckFolders did not notice the volume update")
	}
	if v := r.Current().Version(); v == first || len(r.Current().Policies()) != 3 {
		t.Fatalf("after the volume update: %v with %d policies", v, len(r.Current().Policies()))
	}
}
