package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/sidecar"
)

// tcpProxy relays TCP connections to a target; the test can cut it (new
// connections are refused, open ones closed: a partition) or stall it
// (connections are accepted and never answered: a central PDP slow past
// every timeout), and restore it.
type tcpProxy struct {
	ln     net.Listener
	target string
	mode   atomic.Int32 // proxyPass, proxyCut, proxyStall
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

const (
	proxyPass int32 = iota
	proxyCut
	proxyStall
)

// startProxy relays a loopback port to target (host:port) until the test
// ends, and returns it; URL() is its base URL.
func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.closeAll()
	})
	return p
}

func (p *tcpProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *tcpProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
}

func (p *tcpProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		switch p.mode.Load() {
		case proxyCut:
			_ = c.Close()
			continue
		case proxyStall:
			p.track(c) // never answered; closed by the next mode change
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		// The mode may have changed while dialling: relay only if it is
		// still pass (set changes it under the same lock).
		p.mu.Lock()
		if p.mode.Load() != proxyPass {
			p.mu.Unlock()
			_ = c.Close()
			_ = up.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
		go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
	}
}

// set changes the mode and closes every open connection (keep-alive ones
// too), so that the new mode holds for everything from now on.
func (p *tcpProxy) set(mode int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode.Store(mode)
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// askSidecar sends an evaluation to the sidecar with the application key
// and decodes the answer.
func askSidecar(t *testing.T, sc, key, body string) sidecarAnswer {
	t.Helper()
	code, data, err := postJSON(sc, "/access/v1/evaluation", key, body)
	var a sidecarAnswer
	if err != nil || code != http.StatusOK || json.Unmarshal(data, &a) != nil {
		t.Fatalf("evaluation through the sidecar: %d %s %v", code, data, err)
	}
	return a
}

// bobViews is bob viewing alice's statements for her (poa-alice-bob).
const bobViews = `{"subject":{"type":"user","id":"bob"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},` +
	`"context":{"purpose":"account_servicing","on_behalf_of":{"type":"user","id":"alice"}}}`

// TestSidecarPartitionedRevoke ("the enforcement path holds", item 3): a
// sidecar cut off from the central PDP (the proxy between them stopped)
// while alice revokes bob's power of attorney. The revoke returns once the
// sidecar's lease ran out and names the sidecar that did not acknowledge
// it; from then on the sidecar gives no allow decided before the revoke,
// not even a degraded one for an action configured for degraded answers.
func TestSidecarPartitionedRevoke(t *testing.T) {
	dir := t.TempDir()
	central := startNorthbank(t)
	proxy := startProxy(t, strings.TrimPrefix(central.URL, "http://"))
	const key = "demo-key-mobile-banking"
	sc := startSidecar(t, proxy.URL(), key, filepath.Join(dir, "spool"), map[string]string{
		"PDP_SIDECAR_DEGRADED_ACTIONS":       "view_statements",
		"PDP_SIDECAR_DEGRADED_MAX_STALENESS": "5m",
		"PDP_SIDECAR_BREAKER_COOLDOWN":       "200ms",
		"PDP_SIDECAR_TIMEOUT":                "500ms",
	})
	if a := askSidecar(t, sc, key, bobViews); !a.Decision {
		t.Fatalf("bob views alice's statements before the revoke: %+v", a)
	}
	if a := askSidecar(t, sc, key, bobViews); !a.Decision || a.Context.CachedFrom == "" {
		t.Fatalf("the second view is not a cache hit: %+v", a)
	}

	proxy.set(proxyCut)
	start := time.Now()
	code, body, hdr := doWithHeader(t, central.URL+"/v1/delegations/poa-alice-bob/revoke",
		`{"actor":{"type":"user","id":"alice"},"reason":"lost trust"}`, demoKey("mobile-banking")...)
	returned := time.Now()
	if code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, body)
	}
	t.Logf("the revoke returned after %v", returned.Sub(start))
	if took := returned.Sub(start); took > 3*time.Second {
		t.Errorf("the revoke took %v, want at most about one lease (2s)", took)
	}
	unacked := hdr.Get(api.HeaderUnacknowledgedSidecars)
	if !strings.Contains(unacked, "mobile-banking/test-sidecar-spool") {
		t.Errorf("the revoke's answer names the sidecars that did not acknowledge it as %q, want mobile-banking/test-sidecar-spool", unacked)
	}

	// From now on: never an allow, for one second of asking.
	for time.Since(returned) < time.Second {
		a := askSidecar(t, sc, key, bobViews)
		if a.Decision {
			t.Fatalf("the partitioned sidecar allowed bob %v after the revoke returned (degraded %v, cached from %s)",
				time.Since(returned), a.Context.Degraded, a.Context.CachedFrom)
		}
		if len(a.Context.Reasons) != 1 || a.Context.Reasons[0] != sidecar.ReasonPDPUnreachable {
			t.Fatalf("reasons %v, want [%s]", a.Context.Reasons, sidecar.ReasonPDPUnreachable)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Reconnected, the sidecar asks again and learns of the revoke.
	proxy.set(proxyPass)
	eventually(t, "the sidecar reconnected", func() bool { return sidecarStatus(t, sc).Mode == "connected" })
	if a := askSidecar(t, sc, key, bobViews); a.Decision {
		t.Fatalf("bob views after the revoke, reconnected: %+v", a)
	}
}

// doWithHeader POSTs body to url with the header pairs and returns the
// status, the body and the answer's header.
func doWithHeader(t *testing.T, url, body string, header ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, data, res.Header
}
