package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ciampdp/pdp/pdp/api"
)

// ingestAs posts one fail-closed sidecar record (spool seq seq) of the
// sidecar id to a replica with an application's key.
func ingestAs(t *testing.T, url, key, sidecar string, seq int) (int, string) {
	t.Helper()
	id := uuid.Must(uuid.NewV7())
	sec, nsec := id.Time().UnixTime()
	at := time.Unix(sec, nsec).UTC().Format(time.RFC3339Nano)
	body := fmt.Sprintf(`{"records":[{"seq":%d,"id":%q,"time":%q,"body":{"decision_id":%q,"time":%q,"sidecar":%q,"decision":false,"source":"fail_closed"}}]}`,
		seq, id, at, id, at, sidecar)
	req, err := http.NewRequest(http.MethodPost, url+api.TrailIngestPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set(api.SidecarIDHeader, sidecar)
	res, err := sidecarClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimSpace(string(data))
}

// TestReplicasShareSidecarOwnership (issue 13): a sidecar id whose records
// mobile-banking stored through replica A is refused (403) to
// advisor-portal through replica B, which never saw it; mobile-banking
// goes on through B.
func TestReplicasShareSidecarOwnership(t *testing.T) {
	url := testDatabase(t)
	bin := buildPDP(t)
	skeyFile, _ := trailSigningKey(t)
	_, urls := startReplicas(t, bin, replicaEnv(url, skeyFile), 2)
	a, b := urls[0], urls[1]
	for _, tc := range []struct {
		via, key string
		seq      int
		want     int
	}{
		{a, "demo-key-mobile-banking", 1, http.StatusOK},
		{b, "demo-key-advisor-portal", 1, http.StatusForbidden},
		{b, "demo-key-advisor-portal", 2, http.StatusForbidden},
		{b, "demo-key-mobile-banking", 2, http.StatusOK},
		{a, "demo-key-advisor-portal", 3, http.StatusForbidden},
	} {
		if code, body := ingestAs(t, tc.via, tc.key, "sc-owned", tc.seq); code != tc.want {
			t.Errorf("%s through %s, seq %d: %d %s, want %d", tc.key, tc.via, tc.seq, code, body, tc.want)
		}
	}
}
