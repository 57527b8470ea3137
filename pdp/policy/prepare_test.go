package policy_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/policy"
)

// TestReloaderPrepareGetsCandidate: Prepare learns the source and the
// version it replaces from its arguments: it runs under the reloader's
// lock, so it must not ask the reloader (issue A1's deadlock).
func TestReloaderPrepareGetsCandidate(t *testing.T) {
	root := newBundleDir(t, fixtureFiles())
	var got []policy.Candidate
	r := policy.NewReloader(policy.ReloaderConfig{Dirs: policy.DirsFor(root),
		Prepare: func(_ context.Context, _ *policy.Bundle, c policy.Candidate) error {
			got = append(got, c)
			return nil
		}})
	ctx := context.Background()
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	first := r.Status().Active
	writeFile(t, filepath.Join(root, "policies/app.cedar"), fixturePolicies+"\n@id(\"extra\")\npermit (principal, action == Action::\"read\", resource);\n")
	time.Sleep(10 * time.Millisecond) // a new modification time for the fingerprint
	if !r.CheckFolders(ctx) {
		t.Fatal("the change was not noticed")
	}
	src := r.Status().Source
	want := []policy.Candidate{{Source: src}, {Source: src, Previous: first}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Prepare got %+v, want %+v", got, want)
	}
}
