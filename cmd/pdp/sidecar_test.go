package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/policytest"
	"github.com/ciampdp/pdp/pdp/recorder"
	pdpserver "github.com/ciampdp/pdp/pdp/server"
	"github.com/ciampdp/pdp/pdp/trail"
	"github.com/ciampdp/pdp/sidecar"
)

// startSidecar runs `pdp sidecar` in this process against central, with
// the application key and spool dir given and env set (PDP_SIDECAR_*), and
// returns its URL.
func startSidecar(t *testing.T, central, key, spool string, env map[string]string) string {
	t.Helper()
	t.Setenv("PDP_SIDECAR_API_KEY", key)
	t.Setenv("PDP_SIDECAR_SPOOL_DIR", spool)
	t.Setenv("PDP_SIDECAR_ID", "test-sidecar-"+filepath.Base(spool))
	for k, v := range env {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogWatcher()
	logs.msg = sidecarListeningMsg
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"sidecar", "--listen", "127.0.0.1:0", "--central-url", central}, strings.NewReader(""), io.Discard, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("sidecar exited with %d; log:\n%s", code, logs)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("sidecar did not stop; log:\n%s", logs)
		}
	})
	select {
	case addr := <-logs.listening:
		url := "http://" + addr
		eventually(t, "the sidecar follows the change feed", func() bool { return sidecarStatus(t, url).Mode == "connected" })
		return url
	case code := <-done:
		t.Fatalf("sidecar exited with %d; log:\n%s", code, logs)
	case <-time.After(20 * time.Second):
		t.Fatalf("sidecar did not listen; log:\n%s", logs)
	}
	return ""
}

// sidecarStatus reads the sidecar's /readyz.
func sidecarStatus(t *testing.T, url string) sidecar.Status {
	t.Helper()
	res, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st sidecar.Status
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// sidecarAnswer is the part of an AuthZEN answer (from the sidecar or the
// central PDP) the end-to-end tests read.
type sidecarAnswer struct {
	Decision bool `json:"decision"`
	Context  struct {
		DecisionID  string   `json:"decision_id"`
		Policies    []string `json:"policies"`
		Reasons     []string `json:"reasons"`
		Obligations []string `json:"obligations"`
		CachedFrom  string   `json:"cached_from"`
		Degraded    bool     `json:"degraded"`
		Message     string   `json:"message"`
	} `json:"context"`
}

var sidecarClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}

func postJSON(url, path, key, body string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := sidecarClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	return res.StatusCode, data, err
}

// bobPays is bob paying 250 from alice's account for her (poa-alice-bob).
const bobPays = `{"subject":{"type":"user","id":"bob"},"action":{"name":"make_payment"},"resource":{"type":"account","id":"acc-alice"},` +
	`"context":{"purpose":"account_servicing","amount":250,"currency":"EUR","on_behalf_of":{"type":"user","id":"alice"}}}`

// freeAddr returns a loopback address nobody listens on (now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// northbankWithTrail starts the Northbank central PDP with a sync trail in
// dir, at addr.
func northbankWithTrail(t *testing.T, dir, addr string) *server {
	t.Helper()
	t.Setenv("PDP_TRAIL_MODE", pdpserver.TrailSync)
	t.Setenv("PDP_TRAIL_DIR", filepath.Join(dir, "trail"))
	return startNorthbank(t, "--addr", addr)
}

// trailAnswers maps every decision id in the trail in dir (central
// decisions and shipped sidecar answers) to the number of records holding
// it.
func trailAnswers(t *testing.T, dir string) map[string]int {
	t.Helper()
	l, err := trail.OpenFile(dir, trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ids := map[string]int{}
	err = l.Scan(0, l.Size(), func(r trail.Record) error {
		switch r.Kind {
		case recorder.KindDecision:
			ids[r.ID]++
		case "sidecar":
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

// TestSidecarRevokeUnderLoad is issue 6's revoke test: bob's payment checks
// run through the sidecar (mostly from its cache) while alice revokes his
// power of attorney at the central PDP. No check that started after the
// revoke call returned is allowed, and every answer is in the central trail
// exactly once.
func TestSidecarRevokeUnderLoad(t *testing.T) {
	dir := t.TempDir()
	central := northbankWithTrail(t, dir, "127.0.0.1:0")
	sc := startSidecar(t, central.URL, "demo-key-mobile-banking", filepath.Join(dir, "spool"), nil)

	type result struct {
		start, end time.Time
		allowed    bool
		id         string
	}
	var (
		mu      sync.Mutex
		results []result
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				start := time.Now()
				code, data, err := postJSON(sc, "/access/v1/evaluation", "demo-key-mobile-banking", bobPays)
				end := time.Now()
				var a sidecarAnswer
				if err != nil || code != http.StatusOK || json.Unmarshal(data, &a) != nil {
					t.Errorf("evaluation through the sidecar: %d %s %v", code, data, err)
					return
				}
				mu.Lock()
				results = append(results, result{start, end, a.Decision, a.Context.DecisionID})
				mu.Unlock()
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	code, body := central.do(t, http.MethodPost, "/v1/delegations/poa-alice-bob/revoke", `{"actor":{"type":"user","id":"alice"},"reason":"lost trust"}`, demoKey("mobile-banking")...)
	revoked := time.Now()
	if code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, body)
	}
	time.Sleep(500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	var before, after, hits int
	for _, r := range results {
		switch {
		case r.end.Before(revoked) && r.allowed:
			before++
		case r.start.After(revoked):
			after++
			if r.allowed {
				t.Errorf("decision %s allowed bob's payment %v after the revoke returned", r.id, r.start.Sub(revoked))
			}
		}
	}
	st := sidecarStatus(t, sc)
	hits = int(st.Hits)
	t.Logf("%d answers: %d allowed before the revoke, %d after it (all denied); sidecar cache hits %d of %d (%.0f%%)",
		len(results), before, after, hits, st.Hits+st.Misses, 100*st.HitRatio)
	if before == 0 || after == 0 || hits == 0 {
		t.Fatalf("the load did not span the revoke with cache hits: before %d, after %d, hits %d", before, after, hits)
	}
	eventually(t, "the sidecar shipped its spool", func() bool {
		st := sidecarStatus(t, sc)
		return st.Shipped >= st.Spooled
	})
	// An auditor explains a cache hit through the central decision it repeats.
	last := results[len(results)-1]
	code, body = central.do(t, http.MethodGet, "/v1/audit/decisions/"+last.id, "", "Authorization", "Bearer demo-key-auditor")
	if code != http.StatusOK || !strings.Contains(string(body), "by sidecar") || !strings.Contains(string(body), "It repeats central decision") {
		t.Errorf("explain a sidecar answer: %d %s", code, body)
	}
	// The auditor's list includes the sidecar's own answers, marked.
	since := url.QueryEscape(last.start.Add(-100 * time.Millisecond).UTC().Format(time.RFC3339Nano))
	code, body = central.do(t, http.MethodGet, "/v1/audit/decisions?subject=user:bob&limit=10000&since="+since, "", "Authorization", "Bearer demo-key-auditor")
	if code != http.StatusOK || !strings.Contains(string(body), `"sidecar":`) || !strings.Contains(string(body), last.id) {
		t.Errorf("the audit query does not list the sidecar's answers: %d %.2000s", code, body)
	}
	central.stop(t)
	ids := trailAnswers(t, filepath.Join(dir, "trail"))
	for _, r := range results {
		if ids[r.id] != 1 {
			t.Errorf("answer %s is %d times in the central trail, want once", r.id, ids[r.id])
		}
	}
}

// TestSidecarCentralDown stops the central PDP under load: once its lease
// ran out the sidecar denies (pdp_unreachable), view_statements too
// although it is configured for degraded answers (a change may have been
// answered meanwhile); it spools its answers, and once the central PDP is
// back the trail holds every answer exactly once.
func TestSidecarCentralDown(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	central := northbankWithTrail(t, dir, addr)
	sc := startSidecar(t, central.URL, "demo-key-mobile-banking", filepath.Join(dir, "spool"), map[string]string{
		"PDP_SIDECAR_DEGRADED_ACTIONS":       "view_statements",
		"PDP_SIDECAR_DEGRADED_MAX_STALENESS": "1m",
		"PDP_SIDECAR_BREAKER_COOLDOWN":       "200ms",
	})
	views := `{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`
	ask := func(body string) sidecarAnswer {
		t.Helper()
		code, data, err := postJSON(sc, "/access/v1/evaluation", "demo-key-mobile-banking", body)
		var a sidecarAnswer
		if err != nil || code != http.StatusOK || json.Unmarshal(data, &a) != nil {
			t.Fatalf("evaluation through the sidecar: %d %s %v", code, data, err)
		}
		return a
	}
	var answers []string
	for _, b := range []string{views, bobPays} {
		a := ask(b)
		if !a.Decision {
			t.Fatalf("before the outage: %+v", a)
		}
		answers = append(answers, a.Context.DecisionID)
	}
	central.stop(t)
	// Until its lease runs out the sidecar still answers from its cache
	// (nothing can have changed without it acknowledging); then it is on
	// its own.
	eventually(t, "the sidecar's lease ran out", func() bool { return sidecarStatus(t, sc).Mode != "connected" })
	for range 20 {
		v, p := ask(views), ask(bobPays)
		if v.Decision || v.Context.Degraded || len(v.Context.Reasons) != 1 || v.Context.Reasons[0] != sidecar.ReasonPDPUnreachable {
			t.Fatalf("view_statements during the outage, the lease run out: %+v, want deny pdp_unreachable", v)
		}
		if p.Decision || len(p.Context.Reasons) != 1 || p.Context.Reasons[0] != sidecar.ReasonPDPUnreachable {
			t.Fatalf("make_payment during the outage: %+v, want deny pdp_unreachable", p)
		}
		answers = append(answers, v.Context.DecisionID, p.Context.DecisionID)
	}
	if st := sidecarStatus(t, sc); st.Mode == "connected" || st.Degraded != 0 || st.FailClosed != 40 {
		t.Fatalf("status during the outage: %+v", st)
	}

	central = northbankWithTrail(t, dir, addr) // same trail, same address
	eventually(t, "the sidecar reconnected and shipped its spool", func() bool {
		st := sidecarStatus(t, sc)
		return st.Mode == "connected" && st.Shipped >= st.Spooled && st.Spooled >= 40
	})
	central.stop(t)
	ids := trailAnswers(t, filepath.Join(dir, "trail"))
	for _, id := range answers {
		if ids[id] != 1 {
			t.Errorf("answer %s is %d times in the central trail, want once", id, ids[id])
		}
	}
}

// TestSidecarConsistency runs every Northbank fixture through the engine
// in process, the central API (single and batch) and the sidecar, cold and
// warm: all agree.
func TestSidecarConsistency(t *testing.T) {
	dir := t.TempDir()
	central := northbankWithTrail(t, dir, "127.0.0.1:0")
	suites, err := policytest.LoadSuites(northbank)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := policy.Load(context.Background(), policy.DirsFor(northbank))
	if err != nil {
		t.Fatal(err)
	}
	engineSuites := 0
	sidecars := map[string]string{}
	for _, s := range suites {
		app := s.Application
		if app == "" {
			app = "mobile-banking"
		}
		sc, ok := sidecars[app]
		if !ok {
			sc = startSidecar(t, central.URL, "demo-key-"+app, filepath.Join(dir, "spool-"+app), nil)
			sidecars[app] = sc
		}
		var bodies []string
		for _, c := range s.Cases {
			bodies = append(bodies, string(c.Body))
		}
		// The engine in process, on the suite's facts and the real clock
		// (the central PDP's), for the suites whose facts are the ones the
		// central PDP was seeded with.
		var engineSaid []string
		if len(s.Consents) == 0 && len(s.Signals) == 0 && s.SignalsFile == "" {
			engineSuites++
			s2 := s
			s2.Now = time.Time{}
			e, closeEngine, err := policytest.NewEngine(context.Background(), bundle, s2)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range s.Cases {
				req := c.Request
				req.Application = app
				d, err := e.Decide(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				engineSaid = append(engineSaid, fmt.Sprintf("%v %v", d.Allowed, d.Reasons))
			}
			closeEngine()
		}
		batch := `{"evaluations":[` + strings.Join(bodies, ",") + `]}`
		code, data, err := postJSON(central.URL, "/access/v1/evaluations", "demo-key-"+app, batch)
		var ba struct {
			Evaluations []sidecarAnswer `json:"evaluations"`
		}
		if err != nil || code != http.StatusOK || json.Unmarshal(data, &ba) != nil || len(ba.Evaluations) != len(bodies) {
			t.Fatalf("%s batch: %d %s %v", s.Name, code, data, err)
		}
		for i, body := range bodies {
			paths := map[string]string{"central": central.URL, "sidecar cold": sc, "sidecar warm": sc}
			want := fmt.Sprintf("%v %v", ba.Evaluations[i].Decision, ba.Evaluations[i].Context.Reasons)
			if engineSaid != nil && engineSaid[i] != want {
				t.Errorf("%s case %d: the engine said %s, the central batch %s", s.Name, i, engineSaid[i], want)
			}
			for _, name := range []string{"central", "sidecar cold", "sidecar warm"} {
				code, data, err := postJSON(paths[name], "/access/v1/evaluation", "demo-key-"+app, body)
				var a sidecarAnswer
				if err != nil || code != http.StatusOK || json.Unmarshal(data, &a) != nil {
					t.Fatalf("%s %s: %d %s %v", s.Name, name, code, data, err)
				}
				if got := fmt.Sprintf("%v %v", a.Decision, a.Context.Reasons); got != want {
					t.Errorf("%s case %d via %s: %s, the batch said %s", s.Name, i, name, got, want)
				}
				// A step-up report is never answered from the cache.
				report := strings.Contains(body, `"step_up":`)
				if name == "sidecar warm" && a.Context.CachedFrom == "" && !report {
					t.Errorf("%s case %d: the warm sidecar did not answer from its cache", s.Name, i)
				}
			}
		}
	}
	if engineSuites == 0 {
		t.Fatal("no suite compared with the engine")
	}
	t.Logf("%d of %d suites also compared with the engine in process", engineSuites, len(suites))
}
