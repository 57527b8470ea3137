package main

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/ciampdp/pdp/pdp/recorder"
	pdpserver "github.com/ciampdp/pdp/pdp/server"
	"github.com/ciampdp/pdp/pdp/trail"
	"github.com/ciampdp/pdp/pdp/trail/pgtrail"
)

// replicaEnv is the environment of a Northbank replica with every store on
// the PostgreSQL database at url (one shared trail, signed with skeyFile).
func replicaEnv(url, skeyFile string) []string {
	return append(os.Environ(),
		"PDP_POLICY_DIR="+northbank,
		"PDP_RELATIONS_ENGINE=postgres",
		"PDP_RELATIONS_POSTGRES_URL="+url,
		"PDP_RELATIONS_BOOTSTRAP="+filepath.Join(northbank, "relationships.txt"),
		"PDP_DELEGATIONS_ENGINE=postgres",
		"PDP_DELEGATIONS_POSTGRES_URL="+url,
		"PDP_DELEGATIONS_SEED="+filepath.Join(northbank, "delegations.json"),
		"PDP_CONSENT_ENGINE=postgres",
		"PDP_CONSENT_POSTGRES_URL="+url,
		"PDP_CONSENT_SEED="+filepath.Join(northbank, "consents.json"),
		// Received risk signals in the ledger the replicas share (a file
		// ledger is one process's).
		"PDP_SIGNALS_ENGINE=postgres",
		"PDP_SIGNALS_POSTGRES_URL="+url,
		"PDP_TRAIL_STORE=postgres",
		"PDP_TRAIL_POSTGRES_URL="+url,
		"PDP_TRAIL_SIGNING_KEY_FILE="+skeyFile,
		"PDP_TRAIL_MODE="+pdpserver.TrailSync,
		"PDP_LOG_FORMAT=json",
	)
}

// trailSigningKey writes a new signing key and returns its file and the
// verifier key.
func trailSigningKey(t *testing.T) (file, vkey string) {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, "pdp/trail")
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(t.TempDir(), "trail.key")
	if err := os.WriteFile(file, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if vkey, err = pdpserver.VerifierKey(skey); err != nil {
		t.Fatal(err)
	}
	return file, vkey
}

// startReplicas starts n replicas of the binary one after the other (the
// first seeds the stores) and returns their processes and URLs.
func startReplicas(t *testing.T, bin string, env []string, n int) ([]*exec.Cmd, []string) {
	t.Helper()
	cmds, urls := make([]*exec.Cmd, n), make([]string, n)
	for i := range n {
		cmds[i], urls[i] = startBinary(t, bin, env, append([]string{"serve", "--addr", "127.0.0.1:0", "--reload-interval", "0"}, exampleConfig()...)...)
	}
	return cmds, urls
}

// stopReplica stops a replica gracefully (SIGTERM) and waits for it.
func stopReplica(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("replica exited: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("replica did not stop within 30s")
	}
}

// pgTrailAnswers maps every decision id in the shared trail at url
// (central decisions and shipped sidecar answers) to the number of
// records holding it.
func pgTrailAnswers(t *testing.T, url string) map[string]int {
	t.Helper()
	l, err := pgtrail.Open(t.Context(), url, pgtrail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	size, err := l.SizeContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	err = l.Scan(0, size, func(r trail.Record) error {
		switch r.Kind {
		case recorder.KindDecision:
			ids[r.ID]++
		case trail.KindSidecar:
			var b struct {
				Record struct {
					DecisionID string `json:"decision_id"`
				} `json:"record"`
			}
			if err := json.Unmarshal(r.Body, &b); err != nil {
				return err
			}
			ids[b.Record.DecisionID]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// topoAnswer is one answer of the load.
type topoAnswer struct {
	via        string // sidecar-a, sidecar-b, or the replica asked directly
	question   string // bob-pays, gina-portfolio
	start, end time.Time
	allowed    bool
	id         string
	cached     bool
}

const ginaPortfolio = `{"subject":{"type":"user","id":"gina"},"action":{"name":"view_portfolio"},"resource":{"type":"account","id":"acc-alice"},` +
	`"context":{"purpose":"financial_advice"}}`

// TestReplicasTopology is issue 13's topology as processes: 3 replicas of
// the real binary on one PostgreSQL (relationships, delegations, consent,
// trail), a sidecar on replica A (central_url lists A and B) and one on B,
// load through both sidecars and directly to every replica. While it runs:
// alice revokes bob's power of attorney through replica C, alice withdraws
// her financial_advice consent through B, and A is killed with SIGKILL. No
// question sent after a change call returned is allowed, by any sidecar or
// replica; every answer is in the shared trail exactly once (sidecar
// answers shipped through whichever replica), and the trail verifies.
func TestReplicasTopology(t *testing.T) {
	url := testDatabase(t)
	bin := buildPDP(t)
	skeyFile, vkey := trailSigningKey(t)
	cmds, urls := startReplicas(t, bin, replicaEnv(url, skeyFile), 3)
	a, b, c := urls[0], urls[1], urls[2]
	dir := t.TempDir()
	scA := startSidecar(t, a+","+b, "demo-key-mobile-banking", filepath.Join(dir, "spool-a"), nil)
	scB := startSidecar(t, b, "demo-key-advisor-portal", filepath.Join(dir, "spool-b"), nil)

	var (
		mu      sync.Mutex
		answers []topoAnswer
		stop    atomic.Bool
		killed  atomic.Bool
		wg      sync.WaitGroup
	)
	load := func(via, target, key, question, body string) {
		for !stop.Load() {
			start := time.Now()
			code, data, err := postJSON(target, "/access/v1/evaluation", key, body)
			end := time.Now()
			if err != nil || code != http.StatusOK {
				if target == a && killed.Load() {
					time.Sleep(10 * time.Millisecond)
					continue // asked the dead replica: no answer
				}
				t.Errorf("%s: %s: %d %s %v", via, question, code, data, err)
				return
			}
			var ans sidecarAnswer
			if err := json.Unmarshal(data, &ans); err != nil {
				t.Errorf("%s: %s: %s: %v", via, question, data, err)
				return
			}
			mu.Lock()
			answers = append(answers, topoAnswer{via, question, start, end, ans.Decision, ans.Context.DecisionID, ans.Context.CachedFrom != ""})
			mu.Unlock()
		}
	}
	for range 3 {
		wg.Go(func() { load("sidecar-a", scA, "demo-key-mobile-banking", "bob-pays", bobPays) })
		wg.Go(func() { load("sidecar-b", scB, "demo-key-advisor-portal", "gina-portfolio", ginaPortfolio) })
	}
	for i, u := range urls {
		name := string(rune('A' + i))
		wg.Go(func() { load("replica-"+name, u, "demo-key-mobile-banking", "bob-pays", bobPays) })
		wg.Go(func() { load("replica-"+name, u, "demo-key-advisor-portal", "gina-portfolio", ginaPortfolio) })
	}

	change := func(via, path, key, body string) time.Time {
		t.Helper()
		start := time.Now()
		code, data, err := postJSON(via, path, key, body)
		if err != nil || code != http.StatusOK {
			t.Fatalf("%s %s: %d %s %v", via, path, code, data, err)
		}
		t.Logf("%s through %s took %v", path, via, time.Since(start).Round(time.Millisecond))
		return time.Now()
	}
	time.Sleep(time.Second)
	revoked := change(c, "/v1/delegations/poa-alice-bob/revoke", "demo-key-mobile-banking", `{"actor":{"type":"user","id":"alice"},"reason":"lost trust"}`)
	time.Sleep(700 * time.Millisecond)
	withdrawn := change(b, "/v1/consents/withdraw", "demo-key-advisor-portal", `{"subject":`+userAlice+`,"purpose":"financial_advice"}`)
	time.Sleep(500 * time.Millisecond)
	killed.Store(true)
	if err := cmds[0].Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // sidecar A moves to B
	stop.Store(true)
	wg.Wait()

	type tally struct{ before, after, cached int }
	counts := map[string]*tally{}
	for _, r := range answers {
		changed := revoked
		if r.question == "gina-portfolio" {
			changed = withdrawn
		}
		k := r.via + " " + r.question
		if counts[k] == nil {
			counts[k] = &tally{}
		}
		if r.cached {
			counts[k].cached++
		}
		switch {
		case r.end.Before(changed) && r.allowed:
			counts[k].before++
		case r.start.After(changed):
			counts[k].after++
			if r.allowed {
				t.Errorf("%s allowed %s (decision %s) %v after the change call returned", r.via, r.question, r.id, r.start.Sub(changed))
			}
		}
	}
	for k, c := range counts {
		t.Logf("%-28s %4d allowed before the change, %4d asked after it (all denied), %4d from the cache", k, c.before, c.after, c.cached)
	}
	for _, k := range []string{"sidecar-a bob-pays", "sidecar-b gina-portfolio"} {
		if c := counts[k]; c == nil || c.before == 0 || c.after == 0 || c.cached == 0 {
			t.Errorf("%s: the load did not span the change with cache hits: %+v", k, c)
		}
	}
	if st := sidecarStatus(t, scA); st.Central != b || st.Failovers == 0 {
		t.Errorf("sidecar A follows %s after A died (failovers %d), want %s", st.Central, st.Failovers, b)
	}
	for _, sc := range []string{scA, scB} {
		eventually(t, "the sidecar shipped its spool", func() bool {
			st := sidecarStatus(t, sc)
			return st.Shipped >= st.Spooled
		})
	}
	stopReplica(t, cmds[1])
	stopReplica(t, cmds[2])

	ids := pgTrailAnswers(t, url)
	missing, twice := 0, 0
	for _, r := range answers {
		switch n := ids[r.id]; {
		case n == 0:
			missing++
			if missing <= 5 {
				t.Errorf("%s answered %s (decision %s) but it is not in the shared trail", r.via, r.question, r.id)
			}
		case n > 1:
			twice++
			if twice <= 5 {
				t.Errorf("%s's answer %s is %d times in the shared trail, want once", r.via, r.id, n)
			}
		}
	}
	t.Logf("%d answers, all in the shared trail once: missing %d, repeated %d", len(answers), missing, twice)
	if code, out, errOut := logRun("verify", "--postgres-url", url, "--key", vkey); code != exitOK || !strings.Contains(out, "OK: ") {
		t.Errorf("verify the shared trail: %d %s %s", code, out, errOut)
	}
}
