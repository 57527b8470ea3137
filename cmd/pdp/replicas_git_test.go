package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// replicaPolicy asks a replica for its active policy version.
func replicaPolicy(t *testing.T, url string) policyStatus {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/v1/policies", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer demo-key-mobile-banking")
	res, err := sidecarClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	var st policyStatus
	if res.StatusCode != http.StatusOK || json.Unmarshal(data, &st) != nil {
		t.Fatalf("%s/v1/policies: %d %s", url, res.StatusCode, data)
	}
	return st
}

// gitAnswer is one answer of the load of the Git test.
type gitAnswer struct {
	via     string
	start   time.Time
	allowed bool
	version string
	id      string
}

// TestReplicasFollowSharedGitRemote (issue 13, item 5, the policy part): 3
// replicas of the real binary on one PostgreSQL follow one Git remote
// (each its own checkout), a sidecar on A and one on B, load through both
// and directly. A commit that forbids bob's payments is pushed to the
// remote: once every replica reports it in /v1/policies, no sidecar or
// replica answers under the old version (nor allows). Then `pdp replay`
// over the shared trail reproduces every decision, under the version each
// names.
func TestReplicasFollowSharedGitRemote(t *testing.T) {
	url := testDatabase(t)
	bin := buildPDP(t)
	skeyFile, vkey := trailSigningKey(t)
	remote := newPolicyRepo(t, filepath.Join(northbank, "policies"))
	// The bundle's root holds policies/ and schema/: move the copied
	// policies into policies/ and add the schema.
	bundle := remote.dir
	if err := os.Mkdir(filepath.Join(bundle, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"northbank.cedar", "entities.json"} {
		if err := os.Rename(filepath.Join(bundle, f), filepath.Join(bundle, "policies", f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.CopyFS(filepath.Join(bundle, "schema"), os.DirFS(filepath.Join(northbank, "schema"))); err != nil {
		t.Fatal(err)
	}
	first := remote.commit(t, "northbank")

	env := append(replicaEnv(url, skeyFile), "PDP_POLICY_GIT_REMOTE="+remote.dir, "PDP_POLICY_GIT_BRANCH=main",
		"PDP_POLICY_GIT_PULL_INTERVAL=200ms")
	urls := make([]string, 3)
	for i := range urls {
		checkout := "PDP_POLICY_GIT_CHECKOUT=" + filepath.Join(t.TempDir(), "checkout")
		var cmd *exec.Cmd
		cmd, urls[i] = startBinary(t, bin, append(env, checkout), append([]string{"serve", "--addr", "127.0.0.1:0"}, exampleConfig()...)...)
		t.Cleanup(func() { stopReplica(t, cmd) })
		if st := replicaPolicy(t, urls[i]); st.Active.Commit != first {
			t.Fatalf("replica %d serves commit %q, want %s", i, st.Active.Commit, first)
		}
	}
	dir := t.TempDir()
	scA := startSidecar(t, urls[0]+","+urls[1], "demo-key-mobile-banking", filepath.Join(dir, "spool-a"), nil)
	scB := startSidecar(t, urls[1], "demo-key-mobile-banking", filepath.Join(dir, "spool-b"), nil)

	var (
		mu      sync.Mutex
		answers []gitAnswer
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	load := func(via, target string) {
		for !stop.Load() {
			start := time.Now()
			code, data, err := postJSON(target, "/access/v1/evaluation", "demo-key-mobile-banking", bobPays)
			var ans sidecarAnswer
			var ctx struct {
				Context struct {
					PolicyVersion string `json:"policy_version"`
				} `json:"context"`
			}
			if err != nil || code != http.StatusOK || json.Unmarshal(data, &ans) != nil || json.Unmarshal(data, &ctx) != nil {
				t.Errorf("%s: %d %s %v", via, code, data, err)
				return
			}
			mu.Lock()
			answers = append(answers, gitAnswer{via, start, ans.Decision, ctx.Context.PolicyVersion, ans.Context.DecisionID})
			mu.Unlock()
		}
	}
	for range 2 {
		wg.Go(func() { load("sidecar-a", scA) })
		wg.Go(func() { load("sidecar-b", scB) })
	}
	for i, u := range urls {
		wg.Go(func() { load(fmt.Sprintf("replica-%c", 'A'+i), u) })
	}
	time.Sleep(time.Second)

	writeFile(t, filepath.Join(bundle, "policies", "freeze.cedar"), `@id("freeze-bob-payments")
forbid (principal == User::"bob", action == Action::"make_payment", resource);
`)
	second := remote.commit(t, "freeze bob's payments")
	var newHash string
	eventually(t, "every replica serves the new commit", func() bool {
		for _, u := range urls {
			st := replicaPolicy(t, u)
			if st.Active.Commit != second {
				return false
			}
			newHash = st.Active.Hash
		}
		return true
	})
	// A pulled version has no change call to wait on: the guarantee is
	// that no sidecar answers under the old version once the change has
	// reached it (its status names the new version), a few milliseconds
	// after the replica swapped (the feed's latency).
	eventually(t, "every sidecar follows the new version", func() bool {
		return sidecarStatus(t, scA).PolicyVersion == newHash && sidecarStatus(t, scB).PolicyVersion == newHash
	})
	everyone := time.Now()
	time.Sleep(1500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	before, after := 0, 0
	for _, r := range answers {
		if !r.start.After(everyone) {
			before++
			continue
		}
		after++
		if r.allowed || r.version != newHash {
			t.Errorf("%s answered %v under %s (decision %s) %v after every replica served the new version %s",
				r.via, r.allowed, r.version, r.id, r.start.Sub(everyone), newHash)
		}
	}
	t.Logf("%d answers before every replica served the new commit, %d after (all denied under it)", before, after)
	if before == 0 || after == 0 {
		t.Errorf("the load did not span the new version: %d before, %d after", before, after)
	}
	for _, sc := range []string{scA, scB} {
		eventually(t, "the sidecar shipped its spool", func() bool {
			st := sidecarStatus(t, sc)
			return st.Shipped >= st.Spooled
		})
	}
	code, out, errOut := pdpRun("replay", "--postgres-url", url, "--quiet")
	if code != exitOK || !strings.Contains(out, " 0 differs") || strings.Contains(out, " 0 reproduced") {
		t.Errorf("replay of the shared trail: %d %s %s", code, out, errOut)
	}
	t.Logf("replay: %s", strings.TrimSpace(out))
	if code, out, errOut := logRun("verify", "--postgres-url", url, "--key", vkey); code != exitOK || !strings.Contains(out, "OK: ") {
		t.Errorf("verify the shared trail: %d %s %s", code, out, errOut)
	}
}
