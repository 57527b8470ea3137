package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSidecarHitRatioOnAMix measures the sidecar's cache hit ratio on a
// bank-like mix while changes keep arriving (PDP_SIDECAR_MIX=seconds):
// 60 % statement views by owners and delegates (few distinct questions),
// 30 % payments with amounts drawn from 40 typical values, 10 % portfolio
// views by the advisor; Zipf-skewed subjects; a delegation suspended and
// resumed every 500 ms (each a change that clears every sidecar's cache).
func TestSidecarHitRatioOnAMix(t *testing.T) {
	secs, _ := strconv.Atoi(os.Getenv("PDP_SIDECAR_MIX"))
	if secs <= 0 {
		t.Skip("set PDP_SIDECAR_MIX=seconds to measure the sidecar's hit ratio on a realistic mix")
	}
	dir := t.TempDir()
	central := northbankWithTrail(t, dir, "127.0.0.1:0")
	sc := startSidecar(t, central.URL, "demo-key-mobile-banking", filepath.Join(dir, "spool"), nil)

	views := []string{
		`{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`,
		`{"subject":{"type":"user","id":"carol"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-carol"},"context":{"purpose":"account_servicing"}}`,
		`{"subject":{"type":"user","id":"judy"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-judy"},"context":{"purpose":"account_servicing"}}`,
		`{"subject":{"type":"user","id":"bob"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":` + forUser("alice", "") + `}`,
		`{"subject":{"type":"user","id":"dave"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-carol"},"context":` + forUser("carol", "") + `}`,
		`{"subject":{"type":"user","id":"frank"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-acme"},"context":` + forAcme("") + `}`,
	}
	payers := []string{"alice:acc-alice:", "bob:acc-alice:alice", "dave:acc-carol:carol", "carol:acc-carol:"}
	question := func(r *rand.Rand, z *rand.Zipf) string {
		switch p := r.IntN(10); {
		case p < 6:
			return views[int(z.Uint64())%len(views)]
		case p < 9:
			parts := splitColon(payers[int(z.Uint64())%len(payers)])
			who, acc, obo := parts[0], parts[1], parts[2]
			amount := 10 * (1 + r.IntN(40))
			ctx := fmt.Sprintf(`{"purpose":"account_servicing","amount":%d,"currency":"EUR"}`, amount)
			if obo != "" {
				ctx = forUser(obo, fmt.Sprintf(`,"amount":%d,"currency":"EUR"`, amount))
			}
			return `{"subject":{"type":"user","id":"` + who + `"},"action":{"name":"make_payment"},"resource":{"type":"account","id":"` + acc + `"},"context":` + ctx + `}`
		default:
			return `{"subject":{"type":"user","id":"gina"},"action":{"name":"view_portfolio"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"financial_advice"}}`
		}
	}
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		answered atomic.Int64
		changes  int
	)
	for w := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 42))
			z := rand.NewZipf(r, 1.2, 1, 100)
			for !stop.Load() {
				code, data, err := postJSON(sc, "/access/v1/evaluation", "demo-key-mobile-banking", question(r, z))
				if err != nil || code != http.StatusOK || !json.Valid(data) {
					t.Errorf("%d %s %v", code, data, err)
					return
				}
				answered.Add(1)
			}
		})
	}
	end := time.Now().Add(time.Duration(secs) * time.Second)
	for op := "suspend"; time.Now().Before(end); changes++ {
		time.Sleep(500 * time.Millisecond)
		code, body := central.do(t, http.MethodPost, "/v1/delegations/poa-alice-bob/"+op, `{"actor":{"type":"user","id":"alice"}}`, demoKey("mobile-banking")...)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", op, code, body)
		}
		op = map[string]string{"suspend": "resume", "resume": "suspend"}[op]
	}
	stop.Store(true)
	wg.Wait()
	st := sidecarStatus(t, sc)
	t.Logf("%d answers in %ds with %d changes: %d cache hits, %d misses, hit ratio %.1f%%",
		answered.Load(), secs, changes, st.Hits, st.Misses, 100*st.HitRatio)
}

func splitColon(s string) []string {
	out := []string{"", "", ""}
	i := 0
	for _, c := range s {
		if c == ':' {
			i++
			continue
		}
		out[i] += string(c)
	}
	return out
}
