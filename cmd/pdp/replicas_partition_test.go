package main

import (
	"encoding/json"
	"net/http"
	neturl "net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/changefeed/pgfeed"
	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// TestReplicaPartitionedFromPostgres: replica A reaches PostgreSQL through
// a proxy, replica B directly; a sidecar on A answers bob's payments
// mostly from its cache. A is cut off from PostgreSQL (the proxy holds
// every connection unanswered), then alice revokes bob's power of
// attorney through B: the revoke returns within A's replica lease, and
// A's sidecar allows nothing asked after it returned (its lease ran out
// with A's: it fails closed).
func TestReplicaPartitionedFromPostgres(t *testing.T) {
	dbURL := testDatabase(t)
	bin := buildPDP(t)
	skeyFile, _ := trailSigningKey(t)
	_, bs := startReplicas(t, bin, replicaEnv(dbURL, skeyFile), 1) // B seeds the stores
	u, err := neturl.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	_, as := startReplicas(t, bin, replicaEnv(u.String(), skeyFile), 1)
	a, b := as[0], bs[0]
	// A short timeout: calls to the cut-off replica fail fast.
	sc := startSidecar(t, a, "demo-key-mobile-banking", filepath.Join(t.TempDir(), "spool"), map[string]string{"PDP_SIDECAR_TIMEOUT": "500ms"})

	type result struct {
		start   time.Time
		allowed bool
		source  string
	}
	var (
		mu      sync.Mutex
		results []result
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				start := time.Now()
				code, data, err := postJSON(sc, "/access/v1/evaluation", "demo-key-mobile-banking", bobPays)
				var ans sidecarAnswer
				if err != nil || code != http.StatusOK || json.Unmarshal(data, &ans) != nil {
					t.Errorf("through the sidecar: %d %s %v", code, data, err)
					return
				}
				src := "central"
				if ans.Context.CachedFrom != "" {
					src = "cache"
				}
				mu.Lock()
				results = append(results, result{start, ans.Decision, src})
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	proxy.set(proxyStall)
	cut := time.Now()
	code, data, err := postJSON(b, "/v1/delegations/poa-alice-bob/revoke", "demo-key-mobile-banking", `{"actor":{"type":"user","id":"alice"},"reason":"lost trust"}`)
	revoked := time.Now()
	if err != nil || code != http.StatusOK {
		t.Fatalf("revoke through B: %d %s %v", code, data, err)
	}
	took := revoked.Sub(cut)
	limit := pgfeed.ReplicaLease(pdpserver.DefaultHTTP().ChangeLease) + 2*time.Second
	t.Logf("revoke through B with A cut off returned after %v (bound: A's replica lease)", took.Round(time.Millisecond))
	if took > limit {
		t.Errorf("the revoke waited %v for the partitioned replica, want at most %v", took, limit)
	}
	time.Sleep(4 * time.Second)
	stop.Store(true)
	wg.Wait()

	var before, after, cachedBefore int
	for _, r := range results {
		switch {
		case r.start.Before(cut):
			if r.allowed && r.source == "cache" {
				cachedBefore++
			}
			before++
		case r.start.After(revoked):
			after++
			if r.allowed {
				t.Errorf("the sidecar of the partitioned replica allowed (%s) %v after the revoke returned", r.source, r.start.Sub(revoked))
			}
		}
	}
	t.Logf("%d answers before the cut (%d cached allows), %d after the revoke returned (all denied)", before, cachedBefore, after)
	if cachedBefore == 0 || after == 0 {
		t.Errorf("the load did not span the partition with cache hits: %d cached before, %d after", cachedBefore, after)
	}
	if st := sidecarStatus(t, sc); st.Mode == "connected" {
		t.Errorf("the sidecar of the partitioned replica is %q, want it without lease", st.Mode)
	}
	proxy.set(proxyPass)
}
