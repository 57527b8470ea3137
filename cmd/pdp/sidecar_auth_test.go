package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSidecarAPIRequiresCredential ("the enforcement path holds", item 4):
// on TCP the sidecar's AuthZEN API answers only callers that present the
// application's key or the sidecar's local token; health stays open.
func TestSidecarAPIRequiresCredential(t *testing.T) {
	dir := t.TempDir()
	central := startNorthbank(t)
	const key = "demo-key-mobile-banking"
	sc := startSidecar(t, central.URL, key, filepath.Join(dir, "spool"), map[string]string{
		"PDP_SIDECAR_LOCAL_TOKEN": "local-secret-of-mobile-banking",
	})
	search := `{"subject":{"type":"user"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`
	views := `{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`
	batch := `{"evaluations":[` + views + `]}`
	for _, tt := range []struct {
		name, path, body, credential string
		want                         int
	}{
		{"anonymous search", "/access/v1/search/subject", search, "", http.StatusUnauthorized},
		{"anonymous evaluation", "/access/v1/evaluation", views, "", http.StatusUnauthorized},
		{"anonymous batch", "/access/v1/evaluations", batch, "", http.StatusUnauthorized},
		{"search with a wrong key", "/access/v1/search/subject", search, "demo-key-budget-app", http.StatusUnauthorized},
		{"search with the application's key", "/access/v1/search/subject", search, key, http.StatusOK},
		{"evaluation with the local token", "/access/v1/evaluation", views, "local-secret-of-mobile-banking", http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, data, err := postJSON(sc, tt.path, tt.credential, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.want {
				t.Fatalf("%d %s, want %d", code, data, tt.want)
			}
			if code == http.StatusUnauthorized && strings.Contains(string(data), "alice") {
				t.Errorf("a refused answer leaks: %s", data)
			}
		})
	}
	if res, err := http.Get(sc + "/healthz"); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("healthz without a credential: %v %v", res, err)
	} else {
		res.Body.Close()
	}
}

// TestSidecarUnixSocketNeedsNoCredential: on a Unix socket the sidecar
// asks for no credential; the socket is its user's and group's only.
func TestSidecarUnixSocketNeedsNoCredential(t *testing.T) {
	dir := t.TempDir()
	central := startNorthbank(t)
	sock := filepath.Join(dir, "sidecar.sock")
	t.Setenv("PDP_SIDECAR_API_KEY", "demo-key-mobile-banking")
	t.Setenv("PDP_SIDECAR_SPOOL_DIR", filepath.Join(dir, "spool"))
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLogWatcher()
	logs.msg = sidecarListeningMsg
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"sidecar", "--listen", "unix:" + sock, "--central-url", central.URL}, strings.NewReader(""), io.Discard, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("sidecar did not stop; log:\n%s", logs)
		}
	})
	select {
	case <-logs.listening:
	case code := <-done:
		t.Fatalf("sidecar exited with %d; log:\n%s", code, logs)
	case <-time.After(20 * time.Second):
		t.Fatalf("sidecar did not listen; log:\n%s", logs)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		t.Errorf("socket mode %v: others may connect", perm)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	views := `{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`
	res, err := hc.Post("http://sidecar/access/v1/evaluation", "application/json", strings.NewReader(views))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"decision":true`) {
		t.Fatalf("evaluation on the Unix socket without a credential: %d %s", res.StatusCode, body)
	}
}
