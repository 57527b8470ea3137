//go:build linux

package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/sidecar"
)

// TestSidecarSlowCentralRecordsEveryAnswer ("the enforcement path holds",
// item 6): with the central PDP slower than the sidecar's and the
// gateway's timeouts (the proxy in between accepts and never answers),
// every payment asked through the gateway is denied pdp_unreachable — not
// trail_unavailable — and every one of these answers is spooled and, once
// the central PDP answers again, in the central trail exactly once.
func TestSidecarSlowCentralRecordsEveryAnswer(t *testing.T) {
	dir := t.TempDir()
	central := northbankWithTrail(t, dir, "127.0.0.1:0")
	proxy := startProxy(t, strings.TrimPrefix(central.URL, "http://"))
	sc := startSidecar(t, proxy.URL(), nbMobileBanking, filepath.Join(dir, "spool"), map[string]string{
		"PDP_SIDECAR_CONFIG":           nbSidecarConfig(t, dir),
		"PDP_SIDECAR_TIMEOUT":          "300ms",
		"PDP_SIDECAR_GATEWAY_TIMEOUT":  "300ms",
		"PDP_SIDECAR_BREAKER_FAILURES": "1000", // every call waits out the timeout
	})
	token := nbToken(t, "bob", map[string]any{"act_for": "alice"})
	pay := func() (int, string, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, sc+"/authz/nginx", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Original-Method", http.MethodPost)
		req.Header.Set("X-Original-URI", "/accounts/acc-alice/payments?amount=250&currency=EUR")
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := sidecarClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode, res.Header.Get("X-Decision-Id"), res.Header.Get("X-Decision-Reasons")
	}
	if code, _, reasons := pay(); code != http.StatusOK {
		t.Fatalf("bob pays through the gateway, central reachable: %d %s", code, reasons)
	}
	spooled := sidecarStatus(t, sc).Spooled

	proxy.set(proxyStall)
	// Past the lease the cache is not used: every payment asks the
	// central PDP and waits out the timeouts.
	eventually(t, "the sidecar's lease ran out", func() bool { return sidecarStatus(t, sc).Mode != "connected" })
	var ids []string
	for range 12 {
		code, id, reasons := pay()
		if code != http.StatusForbidden || reasons != sidecar.ReasonPDPUnreachable {
			t.Errorf("payment with the central PDP stalled: %d reasons %q, want 403 %s", code, reasons, sidecar.ReasonPDPUnreachable)
		}
		ids = append(ids, id)
	}
	eventually(t, "every answer of the stall spooled", func() bool {
		return sidecarStatus(t, sc).Spooled-spooled >= uint64(len(ids))
	})
	if st := sidecarStatus(t, sc); st.Spooled-spooled != uint64(len(ids)) {
		t.Errorf("%d answers spooled during the stall, want %d (one per answer)", st.Spooled-spooled, len(ids))
	}

	proxy.set(proxyPass)
	eventually(t, "the sidecar reconnected and shipped its spool", func() bool {
		st := sidecarStatus(t, sc)
		return st.Mode == "connected" && st.Shipped >= st.Spooled
	})
	central.stop(t)
	inTrail := trailAnswers(t, filepath.Join(dir, "trail"))
	for _, id := range ids {
		if inTrail[id] != 1 {
			t.Errorf("answer %s is %d times in the central trail, want once", id, inTrail[id])
		}
	}
}
