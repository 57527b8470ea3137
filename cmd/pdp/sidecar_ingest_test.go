package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ciampdp/pdp/pdp/api"
)

// ingestRecordBody is a sidecar's spooled answer as the sidecar writes it.
func ingestRecordBody(id, sidecarID, cachedFrom, source string, allowed bool, at time.Time, action string) string {
	b, _ := json.Marshal(map[string]any{
		"decision_id": id, "time": at, "sidecar": sidecarID, "decision": allowed, "source": source,
		"cached_from": cachedFrom, "degraded": source == "degraded", "reasons": []string{},
		"request": map[string]any{
			"subject": map[string]string{"type": "user", "id": "alice"}, "action": map[string]string{"name": action},
			"resource": map[string]string{"type": "account", "id": "acc-alice"},
		},
	})
	return string(b)
}

// TestTrailIngestAcceptsOnlyRepeats (B7): the central PDP stores a
// sidecar's record only when it repeats a central decision of the same
// application (same action and answer), under a fresh id, at a time not
// before that decision, from a sidecar id bound to that application; or
// when it is a deny that repeats nothing (fail closed). Anything else is
// refused with 4xx and nothing of the request is stored.
func TestTrailIngestAcceptsOnlyRepeats(t *testing.T) {
	dir := t.TempDir()
	central := northbankWithTrail(t, dir, "127.0.0.1:0")
	views := `{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`
	beforeDecision := time.Now().Add(-time.Second).UTC()
	code, data, err := postJSON(central.URL, "/access/v1/evaluation", "demo-key-mobile-banking", views)
	var d sidecarAnswer
	if err != nil || code != http.StatusOK || json.Unmarshal(data, &d) != nil || !d.Decision {
		t.Fatalf("mobile-banking asks: %d %s %v", code, data, err)
	}
	central1 := d.Context.DecisionID
	time.Sleep(10 * time.Millisecond)

	ingest := func(app, sidecarID string, seq int, id, body string) (int, string) {
		t.Helper()
		recs := fmt.Sprintf(`{"records":[{"seq":%d,"id":%q,"time":%q,"body":%s}]}`, seq, id,
			gjson(body, "time"), body)
		c, b := central.do(t, http.MethodPost, api.TrailIngestPath, recs,
			"Authorization", "Bearer demo-key-"+app, api.SidecarIDHeader, sidecarID)
		return c, string(b)
	}
	fresh := func() string { return uuid.Must(uuid.NewV7()).String() }
	now := time.Now().UTC()

	// The honest ones first: mobile-banking's sidecar binds its id.
	good := []struct {
		name, id, body string
	}{
		{"a cache hit repeating mobile-banking's decision", "", ""},
		{"a fail-closed deny repeating nothing", "", ""},
	}
	good[0].id = fresh()
	good[0].body = ingestRecordBody(good[0].id, "mb-1", central1, "cache", true, now, "view_statements")
	good[1].id = fresh()
	good[1].body = ingestRecordBody(good[1].id, "mb-1", "", "fail_closed", false, now, "make_payment")
	for i, g := range good {
		if c, b := ingest("mobile-banking", "mb-1", i+1, g.id, g.body); c != http.StatusOK {
			t.Fatalf("%s: %d %s", g.name, c, b)
		}
	}

	bad := []struct {
		name, app, sidecarID, id, body string
	}{
		{"budget-app repeats mobile-banking's decision", "budget-app", "ba-1", "",
			ingestRecordBody("", "ba-1", central1, "cache", true, now, "view_statements")},
		{"a record under a real decision id", "mobile-banking", "mb-1", central1,
			ingestRecordBody(central1, "mb-1", central1, "cache", true, now, "view_statements")},
		{"a record under an id already ingested", "mobile-banking", "mb-1", good[0].id,
			ingestRecordBody(good[0].id, "mb-1", central1, "cache", true, now, "view_statements")},
		{"backdated to 2020, before the decision it repeats", "mobile-banking", "mb-1", "",
			ingestRecordBody("", "mb-1", central1, "cache", true, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), "view_statements")},
		{"dated a second before the decision it repeats", "mobile-banking", "mb-1", "",
			ingestRecordBody("", "mb-1", central1, "cache", true, beforeDecision, "view_statements")},
		{"a fail-closed deny backdated to 2020", "mobile-banking", "mb-1", "",
			ingestRecordBody("", "mb-1", "", "fail_closed", false, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), "make_payment")},
		{"an allow repeating nothing", "mobile-banking", "mb-1", "",
			ingestRecordBody("", "mb-1", "", "fail_closed", true, now, "make_payment")},
		{"an allow repeating a decision that does not exist", "mobile-banking", "mb-1", "",
			ingestRecordBody("", "mb-1", fresh(), "cache", true, now, "view_statements")},
		{"a repeat with another answer than the decision's", "mobile-banking", "mb-1", "",
			ingestRecordBody("", "mb-1", central1, "cache", false, now, "view_statements")},
		{"a repeat for another action", "mobile-banking", "mb-1", "",
			ingestRecordBody("", "mb-1", central1, "cache", true, now, "make_payment")},
		{"another application's key with mobile-banking's sidecar id", "budget-app", "mb-1", "",
			ingestRecordBody("", "mb-1", "", "fail_closed", false, now, "share_account_information")},
		{"a record naming another sidecar than the header", "mobile-banking", "mb-1", "",
			ingestRecordBody("", "mb-2", central1, "cache", true, now, "view_statements")},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			id, body := b.id, b.body
			if id == "" {
				id = fresh()
				body = strings.Replace(body, `"decision_id":""`, `"decision_id":"`+id+`"`, 1)
			}
			c, ans := ingest(b.app, b.sidecarID, 100, id, body)
			if c < 400 || c >= 500 {
				t.Errorf("%d %s, want 4xx", c, ans)
			}
			t.Logf("%d %s", c, strings.TrimSpace(ans))
		})
	}

	// The auditor's explain finds the honest repeat, and nothing else was
	// stored.
	code, body := central.do(t, http.MethodGet, "/v1/audit/decisions/"+good[0].id, "", "Authorization", "Bearer demo-key-auditor")
	if code != http.StatusOK || !strings.Contains(string(body), "It repeats central decision "+central1) {
		t.Errorf("explain the honest repeat: %d %s", code, body)
	}
	central.stop(t)
	if n := strings.Count(trailText(t, filepath.Join(dir, "trail")), `"kind":"sidecar"`); n != len(good) {
		t.Errorf("%d sidecar records in the trail, want %d", n, len(good))
	}
}

// gjson reads a top-level string field of a JSON object.
func gjson(obj, field string) string {
	var m map[string]any
	_ = json.Unmarshal([]byte(obj), &m)
	s, _ := m[field].(string)
	return s
}
