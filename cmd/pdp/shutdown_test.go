package main

import (
	"crypto/rand"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// hungServer accepts connections and never answers: a peer that is gone
// without closing anything (a blackholed host, a frozen process).
func hungServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never read
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// closedURL is a loopback address nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr
}

// TestSidecarStopsWithCentralGone is issue A2's sidecar test: with the
// central PDP gone (hung, or refusing connections) and requests in flight,
// SIGTERM stops the sidecar within its shutdown timeout.
func TestSidecarStopsWithCentralGone(t *testing.T) {
	bin := sharedBinary(t)
	const timeout = 2 * time.Second
	for _, tt := range []struct {
		name    string
		central func(*testing.T) string
	}{{"hung", hungServer}, {"refused", closedURL}} {
		t.Run(tt.name, func(t *testing.T) {
			p := startProc(t, bin, sidecarListeningMsg, []string{
				"PDP_SIDECAR_API_KEY=k", "PDP_SIDECAR_SPOOL_DIR=" + filepath.Join(t.TempDir(), "spool"),
				"PDP_SIDECAR_SHUTDOWN_TIMEOUT=" + timeout.String(),
			}, "sidecar", "--listen", "127.0.0.1:0", "--central-url", tt.central(t))
			for i := range 4 { // requests in flight to the central PDP
				go func() {
					res, err := http.Post(p.URL+"/access/v1/evaluation", "application/json", strings.NewReader(evaluation(morty, "can_read_todos", `{"type":"todo","id":"t`+string(rune('0'+i))+`"}`)))
					if err == nil {
						res.Body.Close()
					}
				}()
			}
			time.Sleep(300 * time.Millisecond)
			took, _ := p.signal(t, syscall.SIGTERM, timeout+10*time.Second)
			if took > timeout+time.Second {
				t.Errorf("the sidecar took %v to stop after SIGTERM, want at most its shutdown timeout %v (+1s); log:\n%s", took, timeout, p.logs)
			}
		})
	}
}

// freezingProxy forwards TCP connections to a target until frozen: then it
// stops moving bytes (and holds new connections), like a database host
// that vanished from the network without closing anything.
type freezingProxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	done   atomic.Bool // the test ended: pipes return
	mu     sync.Mutex
	conns  []net.Conn
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() {
		p.done.Store(true)
		_ = ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			_ = c.Close()
		}
	})
	return p
}

func (p *freezingProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		if p.frozen.Load() {
			continue // held, never answered
		}
		go func() {
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, u)
			p.mu.Unlock()
			go p.pipe(u, c)
			p.pipe(c, u)
		}()
	}
}

// pipe copies from src to dst until either fails; frozen, it stops.
func (p *freezingProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for p.frozen.Load() {
			time.Sleep(10 * time.Millisecond)
			if p.done.Load() {
				return
			}
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// via rewrites a PostgreSQL URL to go through the proxy.
func (p *freezingProxy) via(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// TestServeStopsWithTrailDatabaseGone is issue A2's serve test: the
// decision trail is on PostgreSQL and the database stops answering with
// requests in flight (they wait for their records); SIGTERM stops serve
// within http.shutdown_timeout all the same, saying what it abandoned.
// Before, the final checkpoint waited on the database for its own timeout
// after the requests had had the whole shutdown timeout.
func TestServeStopsWithTrailDatabaseGone(t *testing.T) {
	bin := sharedBinary(t)
	dbURL := testDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newFreezingProxy(t, u.Host)
	key := filepath.Join(t.TempDir(), "trail.key")
	skey, _, err := note.GenerateKey(rand.Reader, "pdp/trail")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, key, skey+"\n")
	const timeout = 3 * time.Second
	p := startProc(t, bin, listeningMsg, []string{
		"PDP_POLICY_DIR=" + todoDir, "PDP_LOG_FORMAT=json",
		"PDP_TRAIL_STORE=postgres", "PDP_TRAIL_POSTGRES_URL=" + proxy.via(t, dbURL), "PDP_TRAIL_SIGNING_KEY_FILE=" + key,
		"PDP_TRAIL_DIR=" + filepath.Join(t.TempDir(), "trail"),
		"PDP_HTTP_SHUTDOWN_TIMEOUT=" + timeout.String(),
	}, "serve", "--addr", "127.0.0.1:0")
	for i := range 5 {
		if a, err := ask(p.URL, i); err != nil || !a.Decision {
			t.Fatalf("before the database froze: %v %+v", err, a)
		}
	}
	proxy.frozen.Store(true)
	for i := range 4 { // wait for records the database never takes
		go func() { _, _ = ask(p.URL, 100+i) }()
	}
	time.Sleep(500 * time.Millisecond)
	took, code := p.signal(t, syscall.SIGTERM, timeout+30*time.Second)
	if took > timeout+1500*time.Millisecond {
		t.Errorf("serve took %v to stop after SIGTERM, want at most its shutdown timeout %v (+1.5s); log:\n%s", took, timeout, p.logs)
	}
	// The final checkpoint cannot reach the database: serve gives up on it
	// at the bound and says so.
	if code != exitFailure || p.logs.find("ERROR", "shutdown did not finish in time") == nil {
		t.Errorf("exit code %d after %v, want %d and the log naming the abandoned shutdown; log:\n%s", code, took, exitFailure, p.logs)
	}
}

// TestServeStopsWithRequestHanging: a client that never finishes sending
// its request does not hold serve past http.shutdown_timeout, and serve
// still writes its final checkpoint (the trail verifies with every record
// anchored). (The request is cut after its share of the timeout; this
// passed before the A2 fix too, and guards the final checkpoint.)
func TestServeStopsWithRequestHanging(t *testing.T) {
	bin := sharedBinary(t)
	dir := filepath.Join(t.TempDir(), "trail")
	const timeout = 2 * time.Second
	p := startProc(t, bin, listeningMsg, []string{"PDP_POLICY_DIR=" + todoDir, "PDP_LOG_FORMAT=json",
		"PDP_TRAIL_DIR=" + dir, "PDP_HTTP_SHUTDOWN_TIMEOUT=" + timeout.String(),
		"PDP_TRAIL_CHECKPOINT_INTERVAL=1h", // only the final checkpoint anchors the records
	}, "serve", "--addr", "127.0.0.1:0")
	for i := range 10 {
		if a, err := ask(p.URL, i); err != nil || !a.Decision {
			t.Fatalf("evaluation %d: %v %+v", i, err, a)
		}
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Headers and half a body: the handler waits for the rest.
	if _, err := c.Write([]byte("POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"subject\":")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	// It exits 1: a request was cut (the log says so).
	if took, _ := p.signal(t, syscall.SIGTERM, timeout+30*time.Second); took > timeout+time.Second {
		t.Errorf("serve stopped after %v, want within %v (+1s); log:\n%s", took, timeout, p.logs)
	}
	if code, out, errOut := logRun("verify", "--dir", dir, "--fail-unanchored"); code != exitOK {
		t.Errorf("no final checkpoint: verify exit %d\n%s%s", code, out, errOut)
	}
}
