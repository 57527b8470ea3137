package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// TestReplicasStartTogetherOnPostgres: several PDPs started at the same
// moment on one empty database (trail and policy archive in PostgreSQL) all
// come up — the stores' tables are created once, under their advisory
// locks — and all answer over HTTP into the one chain.
func TestReplicasStartTogetherOnPostgres(t *testing.T) {
	url := testDatabase(t)
	key, skey := trailKeyFile(t)
	t.Setenv("PDP_TRAIL_STORE", pdpserver.TrailPostgres)
	t.Setenv("PDP_TRAIL_POSTGRES_URL", url)
	t.Setenv("PDP_TRAIL_SIGNING_KEY_FILE", key)
	t.Setenv("PDP_TRAIL_MODE", pdpserver.TrailSync)
	t.Setenv("PDP_TRAIL_DIR", filepath.Join(t.TempDir(), "trail"))

	const replicas = 4
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type replica struct {
		logs *logWatcher
		done chan int
	}
	rs := make([]replica, replicas)
	var start sync.WaitGroup
	start.Add(1)
	for i := range rs {
		rs[i] = replica{logs: newLogWatcher(), done: make(chan int, 1)}
		go func(r replica) {
			start.Wait()
			r.done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--reload-interval", "0", "--dir", todoDir},
				strings.NewReader(""), io.Discard, r.logs)
		}(rs[i])
	}
	start.Done()
	var urls []string
	for i, r := range rs {
		select {
		case addr := <-r.logs.listening:
			urls = append(urls, "http://"+addr)
		case code := <-r.done:
			r.done <- code // for the wait below
			t.Errorf("replica %d exited with %d before listening; log:\n%s", i, code, r.logs)
		case <-time.After(60 * time.Second):
			t.Fatalf("replica %d did not listen; log:\n%s", i, r.logs)
		}
	}
	for i, u := range urls {
		if _, err := ask(u, i); err != nil {
			t.Errorf("replica %s: %v", u, err)
		}
	}
	cancel()
	for i, r := range rs {
		select {
		case code := <-r.done:
			if code != exitOK && !t.Failed() {
				t.Errorf("replica %d exited with %d; log:\n%s", i, code, r.logs)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("replica %d did not stop; log:\n%s", i, r.logs)
		}
	}
	if t.Failed() {
		return
	}
	vkey, err := pdpserver.VerifierKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := logRun("verify", "--postgres-url", url, "--key", vkey); code != exitOK || !strings.Contains(out, "OK: ") {
		t.Fatalf("verify: %d %s %s", code, out, errOut)
	}
}
