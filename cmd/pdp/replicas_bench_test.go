package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// simulatedSidecar follows the change feed of central as a sidecar does
// (GET /v1/changes over HTTP, acknowledging each seq), and after each new
// seq forwards one evaluation with its id, so that it may hold a cached
// answer and every change waits for its acknowledgement.
func simulatedSidecar(central, id string, stop *atomic.Bool, ready *sync.WaitGroup) {
	client := &http.Client{Timeout: 15 * time.Second}
	var (
		after uint64
		epoch string
		once  sync.Once
	)
	defer once.Do(ready.Done)
	for !stop.Load() {
		q := url.Values{"after": {strconv.FormatUint(after, 10)}, "wait": {"500ms"}}
		if epoch != "" {
			q.Set("epoch", epoch)
		}
		req, _ := http.NewRequest(http.MethodGet, central+"/v1/changes?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer demo-key-mobile-banking")
		req.Header.Set("PDP-Sidecar-Id", id)
		res, err := client.Do(req)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var a struct {
			Seq   uint64 `json:"seq"`
			Epoch string `json:"epoch"`
		}
		err = json.NewDecoder(res.Body).Decode(&a)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if a.Seq != after || a.Epoch != epoch {
			req, _ := http.NewRequest(http.MethodPost, central+"/access/v1/evaluation", strings.NewReader(bobPays))
			req.Header.Set("Authorization", "Bearer demo-key-mobile-banking")
			req.Header.Set("PDP-Sidecar-Id", id)
			req.Header.Set("Content-Type", "application/json")
			if res, err := client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			after, epoch = a.Seq, a.Epoch
			once.Do(ready.Done)
		}
	}
}

// TestReplicasRevokeLatency measures (PDP_REPLICAS_BENCH=N changes per
// case; BENCHMARKS.md "Issue 13") how long a delegation change call takes
// with 0, 10 and 100 sidecars subscribed (simulated over HTTP, spread over
// the replicas), on 1 and 3 replicas of the binary sharing PostgreSQL.
func TestReplicasRevokeLatency(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PDP_REPLICAS_BENCH"))
	if n <= 0 {
		t.Skip("set PDP_REPLICAS_BENCH=N to measure N change calls per case")
	}
	bin := buildPDP(t)
	for _, replicas := range []int{1, 3} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) {
			dbURL := testDatabase(t)
			skeyFile, _ := trailSigningKey(t)
			_, urls := startReplicas(t, bin, replicaEnv(dbURL, skeyFile), replicas)
			for _, sidecars := range []int{0, 10, 100} {
				var (
					stop  atomic.Bool
					ready sync.WaitGroup
					wg    sync.WaitGroup
				)
				ready.Add(sidecars)
				for i := range sidecars {
					wg.Go(func() { simulatedSidecar(urls[i%len(urls)], fmt.Sprintf("sim-%d-%d", sidecars, i), &stop, &ready) })
				}
				ready.Wait()
				time.Sleep(time.Second) // each polled with the seq it was told
				took := make([]time.Duration, 0, n)
				for i := range n {
					// Suspend and resume bob's power of attorney in turns,
					// through the last replica.
					op := "suspend"
					if i%2 == 1 {
						op = "resume"
					}
					start := time.Now()
					code, data, err := postJSON(urls[len(urls)-1], "/v1/delegations/poa-alice-bob/"+op, "demo-key-mobile-banking",
						`{"actor":{"type":"user","id":"alice"},"reason":"bench"}`)
					if err != nil || code != http.StatusOK {
						t.Fatalf("%s: %d %s %v", op, code, data, err)
					}
					took = append(took, time.Since(start))
				}
				if n%2 == 1 { // leave it active
					_, _, _ = postJSON(urls[len(urls)-1], "/v1/delegations/poa-alice-bob/resume", "demo-key-mobile-banking", `{"actor":{"type":"user","id":"alice"}}`)
				}
				stop.Store(true)
				wg.Wait()
				slices.Sort(took)
				t.Logf("replicas=%d sidecars=%3d: change call p50 %v, p90 %v, max %v (%d calls)", replicas, sidecars,
					took[len(took)/2].Round(time.Millisecond), took[len(took)*9/10].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), n)
			}
		})
	}
}
