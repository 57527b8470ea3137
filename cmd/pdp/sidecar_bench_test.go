//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// TestSidecarBench measures the sidecar (issue 6) at fixed request rates,
// open loop as wrk2 does (each request has a scheduled send time and its
// latency runs from it, so a stall is not hidden by the requests it
// delays). Only with PDP_SIDECAR_BENCH=N (N requests per phase):
//
//	PDP_SIDECAR_BENCH=30000 go test ./cmd/pdp -run TestSidecarBench -v -count=1
//	PDP_SIDECAR_BENCH_RATES=10000,5000,2000 PDP_SIDECAR_BENCH_MISS_RATES=200,1000 …
//
// The central PDP (Northbank, sync trail), the sidecar (the example's
// sidecar.yaml), the example app and nginx each run as their own process;
// this process only sends, raw HTTP/1.1 on up to 64 keep-alive
// connections. Phases, each at every rate given (default 10000/s, the
// miss phase 1000/s):
//
//   - floor: the example app directly, no PDP at all: what a Go HTTP
//     round trip costs on this machine with this load generator;
//   - hit: AuthZEN POST /access/v1/evaluation to the sidecar, one request
//     (alice views her statements) answered from its cache;
//   - miss: every request different (bob pays a different amount for
//     alice), so each one goes to the central PDP;
//   - gateway: the sidecar's /authz/nginx directly (JWT verification, route,
//     cache), as nginx would ask it;
//   - nginx: GET /accounts/acc-alice/statements through nginx
//     (auth_request to the sidecar, then the app).
//
// A phase sends at most 20 s of its rate. For each: p50/p90/p99/p99.9/max
// of the latency from the scheduled time and of the service time (from the
// actual send), the rate achieved, and the CPU each process used per
// request.
func TestSidecarBench(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PDP_SIDECAR_BENCH"))
	if n <= 0 {
		t.Skip("set PDP_SIDECAR_BENCH=N to measure N requests per phase")
	}
	rates := func(name, def string) []int {
		v := os.Getenv(name)
		if v == "" {
			v = def
		}
		var out []int
		for _, f := range strings.Split(v, ",") {
			r, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || r <= 0 {
				t.Fatalf("%s=%q: want rates per second, comma-separated", name, v)
			}
			out = append(out, r)
		}
		return out
	}
	hitRates, missRates := rates("PDP_SIDECAR_BENCH_RATES", "10000"), rates("PDP_SIDECAR_BENCH_MISS_RATES", "1000")

	dir := t.TempDir()
	// PDP_SIDECAR_BENCH_BIN: a pdp binary built elsewhere (another
	// commit's, to compare two builds in alternating runs).
	bin := os.Getenv("PDP_SIDECAR_BENCH_BIN")
	if bin == "" {
		bin = buildPDP(t)
	}
	central := startProcess(t, bin, "listening", append(os.Environ(),
		"PDP_POLICY_DIR="+northbank,
		"PDP_RELATIONS_BOOTSTRAP="+filepath.Join(northbank, "relationships.txt"),
		"PDP_DELEGATIONS_SEED="+filepath.Join(northbank, "delegations.json"),
		"PDP_DELEGATIONS_PATH="+filepath.Join(dir, "delegations.jsonl"),
		"PDP_CONSENT_SEED="+filepath.Join(northbank, "consents.json"),
		"PDP_CONSENT_PATH="+filepath.Join(dir, "consent.jsonl"),
		"PDP_TRAIL_MODE="+pdpserver.TrailSync, "PDP_TRAIL_DIR="+filepath.Join(dir, "trail"), "PDP_LOG_FORMAT=json",
	), "serve", "--config", filepath.Join(northbank, "pdp.yaml"), "--addr", "127.0.0.1:0", "--reload-interval", "0")
	sc := startProcess(t, bin, sidecarListeningMsg, append(os.Environ(),
		"PDP_SIDECAR_CONFIG="+nbSidecarConfig(t, dir), "PDP_SIDECAR_API_KEY="+nbMobileBanking,
		"PDP_SIDECAR_SPOOL_DIR="+filepath.Join(dir, "spool"), "PDP_SIDECAR_ID=bench-sidecar",
	), "sidecar", "--listen", "127.0.0.1:0", "--central-url", central.url)
	app, appPID := startNorthbankApp(t)
	edge, nginxPID := startNginx(t, strings.TrimPrefix(sc.url, "http://"), app)
	eventually(t, "the sidecar holds a lease from the central PDP", func() bool {
		return sidecarStatus(t, sc.url).Mode == "connected"
	})
	loadavg := func() string { b, _ := os.ReadFile("/proc/loadavg"); return strings.TrimSpace(string(b)) }
	t.Logf("load average before: %s", loadavg())
	defer func() { t.Logf("load average after: %s", loadavg()) }()
	procs := map[string][]int{"central": {central.pid}, "sidecar": {sc.pid}, "app": {appPID}, "nginx": append([]int{nginxPID}, childPIDs(nginxPID)...)}
	alice := nbToken(t, "alice", nil)
	const views = `{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`
	host := func(url string) string { return strings.TrimPrefix(url, "http://") }
	post := func(body string) []byte {
		return fmt.Appendf(nil, "POST /access/v1/evaluation HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			host(sc.url), nbMobileBanking, len(body), body)
	}
	statements := func(url, path string, extra ...string) []byte {
		return fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n%s\r\n", path, host(url), alice, strings.Join(extra, ""))
	}
	allowedAnswer := func(status int, body []byte) bool {
		return status == http.StatusOK && bytes.Contains(body, []byte(`"decision":true`))
	}
	statusOK := func(status int, _ []byte) bool { return status == http.StatusOK }
	type phase struct {
		name, addr string
		rate       int
		req        func(i int) []byte
		ok         func(status int, body []byte) bool
	}
	hit := post(views)
	gateway := statements(sc.url, "/authz/nginx", "X-Original-Method: GET\r\n", "X-Original-URI: /accounts/acc-alice/statements\r\n")
	viaNginx := statements(edge, "/accounts/acc-alice/statements")
	miss := 0
	missReq := func(int) []byte {
		// A different amount each time (at most 4 decimals, as Cedar's
		// decimal): never in the cache.
		miss++
		return post(fmt.Sprintf(`{"subject":{"type":"user","id":"bob"},"action":{"name":"make_payment"},"resource":{"type":"account","id":"acc-alice"},`+
			`"context":{"purpose":"account_servicing","amount":%d.%04d,"currency":"EUR","on_behalf_of":{"type":"user","id":"alice"}}}`,
			100+miss/10000, miss%10000))
	}
	floor := fmt.Appendf(nil, "GET /accounts/acc-alice/statements HTTP/1.1\r\nHost: %s\r\n\r\n", app)
	var phases []phase
	for _, r := range hitRates {
		phases = append(phases, phase{"floor (the example app directly: a bare Go handler)", app, r, func(int) []byte { return floor }, statusOK})
	}
	for _, r := range hitRates {
		phases = append(phases, phase{"hit (AuthZEN, sidecar cache)", host(sc.url), r, func(int) []byte { return hit }, allowedAnswer})
	}
	for _, r := range missRates {
		phases = append(phases, phase{"miss (AuthZEN, central PDP)", host(sc.url), r, missReq, allowedAnswer})
	}
	for _, r := range hitRates {
		phases = append(phases, phase{"gateway (sidecar /authz/nginx, JWT, cache)", host(sc.url), r, func(int) []byte { return gateway }, statusOK})
	}
	for _, r := range hitRates {
		phases = append(phases, phase{"nginx (auth_request + app)", host(edge), r, func(int) []byte { return viaNginx }, statusOK})
	}
	// PDP_SIDECAR_BENCH_PHASES=hit,miss: only the phases named (by the
	// first word of their name).
	if only := os.Getenv("PDP_SIDECAR_BENCH_PHASES"); only != "" {
		want := strings.Split(only, ",")
		phases = slices.DeleteFunc(phases, func(p phase) bool {
			first, _, _ := strings.Cut(p.name, " ")
			return !slices.Contains(want, first)
		})
	}
	for _, p := range phases {
		// Start from a drained spool: the last phase's shipping is not
		// this one's load.
		eventually(t, "the sidecar shipped its spool", func() bool {
			st := sidecarStatus(t, sc.url)
			return st.Shipped >= st.Spooled
		})
		time.Sleep(time.Second)
		before := sidecarStatus(t, sc.url)
		// Warm up connections and the cache, unmeasured.
		loadAtRate(t, p.addr, min(n/10+1, 2000), min(p.rate, 2000), p.req, p.ok)
		n := min(n, 20*p.rate) // at most 20 s a phase
		cpu0 := cpuTimes(procs)
		r := loadAtRate(t, p.addr, n, p.rate, p.req, p.ok)
		cpu1 := cpuTimes(procs)
		after := sidecarStatus(t, sc.url)
		t.Logf("%s at %d/s: %d requests in %v: %.0f/s achieved, %d failed; cache hits +%d, misses +%d",
			p.name, p.rate, n, r.elapsed.Round(time.Millisecond), float64(n)/r.elapsed.Seconds(), r.failed,
			after.Hits-before.Hits, after.Misses-before.Misses)
		t.Logf("  latency from schedule: %s", r.latency)
		t.Logf("  service time:          %s", r.service)
		var per []string
		for _, name := range []string{"load generator", "sidecar", "nginx", "app", "central"} {
			per = append(per, fmt.Sprintf("%s %.1f µs", name, float64(cpu1[name]-cpu0[name])/float64(time.Microsecond)/float64(n)))
		}
		t.Logf("  CPU per request: %s (%.0f%% of %d cores in all)", strings.Join(per, ", "),
			100*float64(cpu1["all"]-cpu0["all"])/float64(r.elapsed)/float64(runtime.NumCPU()), runtime.NumCPU())
		if r.failed > 0 {
			t.Errorf("%s: %d requests failed (first: %s)", p.name, r.failed, r.firstErr)
		}
	}
	eventually(t, "the sidecar shipped its spool", func() bool {
		st := sidecarStatus(t, sc.url)
		return st.Shipped >= st.Spooled
	})
	st := sidecarStatus(t, sc.url)
	t.Logf("sidecar: %d hits, %d misses, %d answers spooled and shipped", st.Hits, st.Misses, st.Shipped)
}

// proc is a process started by startProcess.
type proc struct {
	url string
	pid int
}

// startProcess runs bin args… with env, waits for the JSON log line with
// msg on stderr and returns the process with the address the line names.
// The process is interrupted (then killed) at cleanup.
func startProcess(t *testing.T, bin, msg string, env []string, args ...string) proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // even if this test binary panics
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	addr := make(chan string, 1)
	var logMu sync.Mutex
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
				a, _ := rec["addr"].(string)
				addr <- a
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case a := <-addr:
		if msg == listeningMsg {
			trackPDP(t, a)
		}
		return proc{url: "http://" + a, pid: cmd.Process.Pid}
	case <-exited:
	case <-time.After(60 * time.Second):
	}
	logMu.Lock()
	defer logMu.Unlock()
	t.Fatalf("%s %s did not log %q; log:\n%s", bin, args[0], msg, log.String())
	return proc{}
}

// loadResult is one phase's measurement.
type loadResult struct {
	elapsed          time.Duration
	latency, service percentiles
	failed           int
	firstErr         string
}

// loadAtRate sends n requests to addr at rate per second, open loop:
// request i is due at start + i/rate, and its latency runs from then; up
// to 64 are in flight on 64 keep-alive connections (the rest wait, and
// their wait counts). The requests are raw HTTP/1.1 (req(i)), sent and
// read with as little work as possible: on 2 cores the load generator's
// CPU is taken from what it measures.
func loadAtRate(t *testing.T, addr string, n, rate int, req func(i int) []byte, ok func(int, []byte) bool) loadResult {
	t.Helper()
	const workers = 64
	reqs := make([][]byte, n) // built before the clock starts
	for i := range reqs {
		reqs[i] = req(i)
	}
	latency, service := make([]time.Duration, n), make([]time.Duration, n)
	var (
		mu       sync.Mutex
		failed   int
		firstErr string
		wg       sync.WaitGroup
	)
	fail := func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		if failed++; firstErr == "" {
			firstErr = msg
		}
	}
	jobs := make(chan int, n)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			var c *rawConn
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for i := range jobs {
				due := start.Add(time.Duration(i) * interval)
				sent := time.Now()
				var (
					status int
					body   []byte
					err    error
				)
				if c == nil {
					c, err = dialRaw(addr)
				}
				if err == nil {
					status, body, err = c.roundTrip(reqs[i])
				}
				done := time.Now()
				latency[i], service[i] = done.Sub(due), done.Sub(sent)
				if err != nil {
					fail(err.Error())
					if c != nil {
						c.Close()
						c = nil
					}
				} else if !ok(status, body) {
					fail(fmt.Sprintf("%d %s", status, body))
				}
			}
		})
	}
	// The dispatcher sleeps on its own thread with nanosleep: the Go
	// runtime rounds a sleep under 1 ms up to 1 ms when the process is
	// idle, which would release the requests in bursts, late.
	runtime.LockOSThread()
	for i := 0; i < n; {
		due := int(time.Since(start)/interval) + 1
		for ; i < n && i < due; i++ {
			jobs <- i
		}
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			ts := syscall.NsecToTimespec(int64(d))
			_ = syscall.Nanosleep(&ts, nil)
		}
	}
	runtime.UnlockOSThread()
	close(jobs)
	wg.Wait()
	return loadResult{elapsed: time.Since(start), latency: percentilesOf(latency), service: percentilesOf(service), failed: failed, firstErr: firstErr}
}

// rawConn is a keep-alive HTTP/1.1 connection that sends prepared
// requests and reads answers with a Content-Length.
type rawConn struct {
	net.Conn
	r    *bufio.Reader
	body []byte
}

func dialRaw(addr string) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &rawConn{Conn: c, r: bufio.NewReaderSize(c, 16<<10)}, nil
}

func (c *rawConn) roundTrip(req []byte) (int, []byte, error) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return 0, nil, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		if len(h) <= 2 { // the blank line
			break
		}
		if k, v, ok := bytes.Cut(h, []byte(":")); ok && strings.EqualFold(string(k), "Content-Length") {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return 0, nil, fmt.Errorf("bad Content-Length %q", h)
			}
		}
	}
	if length < 0 {
		return 0, nil, errors.New("an answer without Content-Length (chunked?): the bench client cannot read it")
	}
	c.body = slices.Grow(c.body[:0], length)[:length]
	if _, err := io.ReadFull(c.r, c.body); err != nil {
		return 0, nil, err
	}
	return status, c.body, nil
}

// percentiles of a latency distribution.
type percentiles struct{ p50, p90, p99, p999, max time.Duration }

func percentilesOf(d []time.Duration) percentiles {
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return percentiles{at(0.50), at(0.90), at(0.99), at(0.999), s[len(s)-1]}
}

func (p percentiles) String() string {
	f := func(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }
	return fmt.Sprintf("p50 %s, p90 %s, p99 %s, p99.9 %s, max %s", f(p.p50), f(p.p90), f(p.p99), f(p.p999), f(p.max))
}

// cpuTimes returns the CPU time (user + system) of each named group of
// processes, of this process ("load generator") and of all of them ("all").
func cpuTimes(procs map[string][]int) map[string]time.Duration {
	out := map[string]time.Duration{}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	out["load generator"], out["all"] = self, self
	for name, pids := range procs {
		for _, pid := range pids {
			c := procCPU(pid)
			out[name] += c
			out["all"] += c
		}
	}
	return out
}

// procCPU reads a process's user + system time from /proc (clock ticks of
// 1/100 s); 0 when it cannot.
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// childPIDs lists the children of pid (nginx's workers).
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(data, ')'); i >= 0 {
			if f := strings.Fields(string(data[i+1:])); len(f) > 1 && f[1] == strconv.Itoa(pid) {
				out = append(out, child)
			}
		}
	}
	return out
}
