package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ciampdp/pdp/pdp/api"
	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// feedAnswer is an answer of the change feed.
type feedAnswer struct {
	Seq           uint64 `json:"seq"`
	Epoch         string `json:"epoch"`
	LeaseMS       int64  `json:"lease_ms"`
	PolicyVersion string `json:"policy_version"`
}

func (s *server) pollFeed(t *testing.T, query string) feedAnswer {
	t.Helper()
	code, body := s.do(t, http.MethodGet, api.ChangesPath+"?"+query, "", api.SidecarIDHeader, "sc-test")
	var a feedAnswer
	if err := json.Unmarshal(body, &a); code != http.StatusOK || err != nil {
		t.Fatalf("GET %s?%s: %d %s", api.ChangesPath, query, code, body)
	}
	return a
}

// TestServeChangeFeedOnPolicyChange: a policy version put into service is
// published to the sidecars' change feed.
func TestServeChangeFeedOnPolicyChange(t *testing.T) {
	bundle := copyBundle(t, todoDir)
	s := startServer(t, "--dir", bundle, "--reload-interval", "100ms")
	first := s.pollFeed(t, "after=0")
	if first.Seq != 1 || first.Epoch == "" || first.LeaseMS != 2000 || first.PolicyVersion == "" {
		t.Fatalf("first poll: %+v", first)
	}
	if err := os.WriteFile(filepath.Join(bundle, "policies", "hold.cedar"), []byte(legalHold("t1")), 0o644); err != nil {
		t.Fatal(err)
	}
	next := s.pollFeed(t, "after=1&wait=10s&epoch="+first.Epoch)
	if next.Seq != 2 || next.Epoch != first.Epoch || next.PolicyVersion == first.PolicyVersion {
		t.Fatalf("after a policy change: %+v (before %+v)", next, first)
	}
}

// TestServeTrailIngest: sidecar records land in the trail exactly once,
// across a restart, and the trail still verifies.
func TestServeTrailIngest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trail")
	// Two fail-closed denies, as a sidecar spools them (the PDP stores
	// only records a sidecar could have made).
	var recs []string
	for seq := 1; seq <= 2; seq++ {
		id := uuid.Must(uuid.NewV7())
		sec, nsec := id.Time().UnixTime()
		at := time.Unix(sec, nsec).UTC().Format(time.RFC3339Nano)
		recs = append(recs, fmt.Sprintf(`{"seq":%d,"id":%q,"time":%q,"body":{"decision_id":%q,"time":%q,"sidecar":"sc-test","decision":false,"source":"fail_closed"}}`,
			seq, id, at, id, at))
	}
	records := `{"records":[` + strings.Join(recs, ",") + `]}`
	ingest := func(url string) string {
		t.Helper()
		s := &server{URL: url}
		code, body := s.do(t, http.MethodPost, api.TrailIngestPath, records, api.SidecarIDHeader, "sc-test")
		if code != http.StatusOK {
			t.Fatalf("ingest: %d %s", code, body)
		}
		return strings.TrimSpace(string(body))
	}
	url, stop := serveTrailBundle(t, pdpserver.TrailSync, dir, todoDir)
	if got := ingest(url); got != `{"ingested":2,"skipped":0,"acked":2}` {
		t.Fatalf("first ingest: %s", got)
	}
	if got := ingest(url); got != `{"ingested":0,"skipped":2,"acked":2}` {
		t.Fatalf("retry: %s", got)
	}
	stop()
	url, stop = serveTrailBundle(t, pdpserver.TrailSync, dir, todoDir)
	if got := ingest(url); got != `{"ingested":0,"skipped":2,"acked":2}` {
		t.Fatalf("retry after a restart: %s", got)
	}
	stop()
	if code, out, errOut := pdpRun("log", "verify", "--dir", dir); code != exitOK {
		t.Fatalf("log verify: %d\n%s%s", code, out, errOut)
	}
	if n := strings.Count(trailText(t, dir), `"kind":"sidecar"`); n != 2 {
		t.Errorf("%d sidecar records in the trail, want 2", n)
	}
}
