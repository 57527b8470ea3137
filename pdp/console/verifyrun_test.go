package console

import (
	"context"
	"crypto/rand"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/trail"
)

// verifyEdge is a file trail whose Verify records the range it was asked
// for and can be made to panic, as a store's Verify on a damaged database
// once did (a negative size given to the tree hash).
type verifyEdge struct {
	*trail.FileLog
	panics bool
	mu     sync.Mutex
	to     uint64
}

func (v *verifyEdge) Verify(ctx context.Context, key string, from, to uint64) (trail.Report, error) {
	v.mu.Lock()
	v.to = to
	v.mu.Unlock()
	if v.panics {
		panic("tlog: negative tree size")
	}
	return v.FileLog.Verify(ctx, key, from, to)
}

// TestConsoleVerifyRun: a verify run started on the trail page checks the
// trail to its end as the store reads it (not to the size when the run
// started, which a live PDP passes at once), and a panic in the store is a
// failed run on the page, not the end of the PDP.
func TestConsoleVerifyRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		panics bool
		want   string
	}{
		{name: "whole trail", want: "OK in"},
		{name: "store panics", panics: true, want: "The verify run failed: the verify run stopped on an internal error: tlog: negative tree size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			skey, vkey, err := note.GenerateKey(rand.Reader, "pdp/trail")
			if err != nil {
				t.Fatal(err)
			}
			signer, err := note.NewSigner(skey)
			if err != nil {
				t.Fatal(err)
			}
			l, err := trail.OpenFile(t.TempDir(), trail.FileOptions{Signer: signer})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Close() })
			edge := &verifyEdge{FileLog: l, panics: tc.panics}
			c, err := New(Config{AuditorKeys: map[string]string{digest("auditor-key"): "internal-audit"}, SessionTTL: time.Hour},
				Deps{Auditor: audit.Service{Trail: l}, Trail: edge, VerifierKey: vkey})
			if err != nil {
				t.Fatal(err)
			}
			cl := &client{t: t, h: c, cookies: map[string]*http.Cookie{}}
			cl.login("auditor-key")
			m := csrfRe.FindStringSubmatch(cl.do(http.MethodGet, "/console/trail", nil).Body.String())
			if m == nil {
				t.Fatal("no CSRF token on the trail page")
			}
			rec := cl.do(http.MethodPost, "/console/trail/verify", url.Values{"csrf": {m[1]}})
			loc := rec.Header().Get("Location")
			if rec.Code != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/trail/verify/") {
				t.Fatalf("start a verify run: %d %q", rec.Code, loc)
			}
			var body string
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				body = cl.do(http.MethodGet, loc, nil).Body.String()
				if !strings.Contains(body, "Running:") {
					break
				}
			}
			if !strings.Contains(body, tc.want) {
				t.Fatalf("verify page lacks %q:\n%s", tc.want, body)
			}
			edge.mu.Lock()
			defer edge.mu.Unlock()
			if edge.to != math.MaxUint64 {
				t.Fatalf("verify asked for records up to %d, want the end of the trail", edge.to)
			}
		})
	}
}
