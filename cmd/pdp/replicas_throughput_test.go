package main

import (
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// loadReplicas sends bob's payment question from clients concurrent
// clients, round robin over urls, for d, and returns the answered
// decisions per second (every answer must be 200).
func loadReplicas(t *testing.T, urls []string, clients int, d time.Duration) float64 {
	t.Helper()
	var (
		n, failed atomic.Int64
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	for i := range clients {
		u := urls[i%len(urls)]
		wg.Go(func() {
			for time.Now().Before(deadline) {
				code, _, err := postJSON(u, "/access/v1/evaluation", "demo-key-mobile-banking", bobPays)
				if err != nil || code != http.StatusOK {
					failed.Add(1)
					continue
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Errorf("%d requests failed", f)
	}
	return float64(n.Load()) / d.Seconds()
}

// TestReplicasThroughput measures (PDP_REPLICAS_THROUGHPUT=S seconds per
// run; BENCHMARKS.md "Issue 13") the decisions/s of 1, 2 and 3 replicas of
// the binary on one PostgreSQL (every store, the shared change feed, one
// trail chain), 32 clients over loopback spread round robin over the
// replicas serving, in alternating rounds; it logs every run and the
// medians, for each trail mode in PDP_REPLICAS_TRAIL_MODES (default sync).
func TestReplicasThroughput(t *testing.T) {
	secs, _ := strconv.Atoi(os.Getenv("PDP_REPLICAS_THROUGHPUT"))
	if secs <= 0 {
		t.Skip("set PDP_REPLICAS_THROUGHPUT=S to measure runs of S seconds")
	}
	const clients, rounds = 32, 3
	modes := []string{pdpserver.TrailSync}
	if m := os.Getenv("PDP_REPLICAS_TRAIL_MODES"); m != "" {
		modes = slices.DeleteFunc(strings.Split(m, ","), func(s string) bool { return s == "" })
	}
	bin := buildPDP(t)
	for _, mode := range modes {
		t.Run("trail="+mode, func(t *testing.T) {
			dbURL := testDatabase(t)
			skeyFile, _ := trailSigningKey(t)
			env := append(replicaEnv(dbURL, skeyFile), "PDP_TRAIL_MODE="+mode)
			_, urls := startReplicas(t, bin, env, 3)
			loadReplicas(t, urls, clients, time.Second) // warm up
			runs := map[int][]float64{}
			for r := range rounds {
				for n := 1; n <= 3; n++ {
					rate := loadReplicas(t, urls[:n], clients, time.Duration(secs)*time.Second)
					runs[n] = append(runs[n], rate)
					t.Logf("round %d: %d replica(s): %.0f decisions/s", r+1, n, rate)
				}
			}
			for n := 1; n <= 3; n++ {
				slices.Sort(runs[n])
				t.Logf("trail %s, %d replica(s): median %.0f decisions/s (runs %.0f)", mode, n, runs[n][len(runs[n])/2], runs[n])
			}
		})
	}
}
