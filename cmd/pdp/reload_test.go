package main

import (
	"path/filepath"
	"testing"
)

// TestServeHotReload edits the bundle under a running server: a broken
// version is rejected while the previous one keeps serving, and a fixed one
// becomes active.
func TestServeHotReload(t *testing.T) {
	t.Parallel()
	dir := copyBundle(t, todoDir)
	s := startServer(t, "--dir", dir, "--reload-interval", "20ms")
	createByBeth := evaluation(beth, "can_create_todo", mortyDoc)

	before := s.policies(t)
	if before.Active.Hash == "" {
		t.Fatalf("no active version: %+v", before)
	}
	if d := s.evaluate(t, createByBeth); d.Decision {
		t.Fatal("a viewer may create todos before the change")
	}

	// A broken policy: rejected, the old version keeps serving.
	extra := filepath.Join(dir, "policies", "extra.cedar")
	writeFile(t, extra, brokenPolicy)
	var st policyStatus
	eventually(t, "the broken version is rejected", func() bool {
		st = s.policies(t)
		return st.LastError != ""
	})
	if st.Active.Hash != before.Active.Hash {
		t.Errorf("active version changed to %s after a broken edit", st.Active.Hash)
	}
	if st.Failures < 1 {
		t.Errorf("failures = %d, want ≥1", st.Failures)
	}
	if n := s.metric(t, "pdp_policy_reload_failures_total"); n < 1 {
		t.Errorf("pdp_policy_reload_failures_total = %v, want ≥1", n)
	}
	if d := s.evaluate(t, evaluation(morty, "can_update_todo", mortyDoc)); !d.Decision || d.Context.PolicyVersion != before.Active.Hash {
		t.Errorf("after a rejected edit: decision %t by %s, want true by %s", d.Decision, d.Context.PolicyVersion, before.Active.Hash)
	}

	// A valid change: a new version becomes active and decides.
	writeFile(t, extra, `// Viewers may create todos too.
@id("todo-create-viewer")
permit (principal in Role::"viewer", action == Action::"can_create_todo", resource);
`)
	eventually(t, "the fixed version is active", func() bool {
		st = s.policies(t)
		return st.Active.Hash != before.Active.Hash && st.LastError == ""
	})
	d := s.evaluate(t, createByBeth)
	if !d.Decision || d.Context.PolicyVersion != st.Active.Hash {
		t.Errorf("after the fix: decision %t by %s, want true by %s", d.Decision, d.Context.PolicyVersion, st.Active.Hash)
	}
	if n := s.metric(t, "pdp_policy_reloads_total"); n < 2 {
		t.Errorf("pdp_policy_reloads_total = %v, want ≥2", n)
	}
}
