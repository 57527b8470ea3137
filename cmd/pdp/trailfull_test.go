package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/recorder"
)

// mountTmpfs mounts a tmpfs of size bytes at a fresh folder until the test
// ends; it skips the test where mounting is not allowed.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("SKIPPED: cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// TestTrailRecoversWhenDiskFrees is issue C10's regression test, through
// the binary on a real full file system (a small tmpfs holds the trail):
// with the disk full, decisions are denied trail_unavailable, /readyz is
// 503 with that reason and /metrics shows the outage; once space is freed
// the PDP records (and allows) again without a restart, the trail holds
// the recovery and every decision answered allow, and it verifies.
func TestTrailRecoversWhenDiskFrees(t *testing.T) {
	bin := sharedBinary(t)
	mnt := mountTmpfs(t, "4m")
	dir := filepath.Join(mnt, "trail")
	p := startProc(t, bin, listeningMsg, []string{"PDP_TRAIL_DIR=" + dir, "PDP_LOG_FORMAT=json", "PDP_POLICY_DIR=" + todoDir},
		"serve", "--addr", "127.0.0.1:0")
	s := &server{URL: p.URL}
	var allowed []string
	askOK := func(i int) answer {
		t.Helper()
		a, err := ask(p.URL, i)
		if err != nil {
			t.Fatalf("evaluation %d: %v", i, err)
		}
		if a.Decision {
			allowed = append(allowed, a.Context.DecisionID)
		}
		return a
	}
	for i := range 20 {
		if a := askOK(i); !a.Decision {
			t.Fatalf("before the disk fills: %+v", a)
		}
	}

	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	denied := false
	for i := 100; i < 2000 && !denied; i++ { // the last page of each file may still take a few
		a := askOK(i)
		denied = !a.Decision && slices.Equal(a.Context.Reasons, []string{recorder.ReasonTrailUnavailable})
	}
	if !denied {
		t.Fatal("no decision denied trail_unavailable with the disk full")
	}
	code, body := p.get(t, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), `"reason":"trail_unavailable"`) {
		t.Errorf("/readyz with the disk full: %d %s", code, body)
	}
	if v := s.metric(t, "pdp_trail_unavailable"); v != 1 {
		t.Errorf("pdp_trail_unavailable = %v with the disk full, want 1", v)
	}
	if v := s.metric(t, "pdp_trail_outages_total"); v != 1 {
		t.Errorf("pdp_trail_outages_total = %v, want 1", v)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, "/readyz is 200 again", func() bool {
		code, _ := p.get(t, "/readyz")
		return code == http.StatusOK
	})
	for i := 3000; i < 3020; i++ {
		if a := askOK(i); !a.Decision {
			t.Fatalf("after space returned: %+v", a)
		}
	}
	if v := s.metric(t, "pdp_trail_unavailable"); v != 0 {
		t.Errorf("pdp_trail_unavailable = %v after recovery, want 0", v)
	}
	eventually(t, "checkpoints succeed again", func() bool { return s.metric(t, "pdp_trail_checkpoint_failing") == 0 })
	if _, code := p.signal(t, syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; log:\n%s", code, p.logs)
	}

	ids := trailIDs(t, dir)
	for _, id := range allowed {
		if !ids[id] {
			t.Errorf("decision %s was answered allow but is not in the trail", id)
		}
	}
	if !strings.Contains(trailText(t, dir), `"action":"trail.recovered"`) {
		t.Error("the trail does not record the recovery")
	}
	if code, out, errOut := logRun("verify", "--dir", dir, "--fail-unanchored"); code != exitOK {
		t.Errorf("verify after recovery: exit %d\n%s%s", code, out, errOut)
	}
	var lines []map[string]any
	for _, l := range strings.Split(p.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && strings.HasPrefix(m["msg"].(string), "decision trail down") {
			lines = append(lines, m)
		}
	}
	if len(lines) != 1 {
		t.Errorf("%d 'decision trail down' log lines, want 1", len(lines))
	}
}
