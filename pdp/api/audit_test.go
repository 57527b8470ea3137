package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp/adminlog"
	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// TestAuditorEndpointsAndAdminRecords runs the server over a real trail:
// delegation changes (through the service's journal) and trail reads land
// in it as admin records, only an auditor key reads it, and a change whose
// record cannot be written is refused (503) and not applied.
func TestAuditorEndpointsAndAdminRecords(t *testing.T) {
	dir := t.TempDir()
	l, err := trail.OpenFile(filepath.Join(dir, "trail"), trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := recorder.NewRecorder(&fakeDecider{}, l, recorder.RecorderOptions{Instance: "test"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := delegation.OpenFile(filepath.Join(dir, "d.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	var journal adminlog.Journal
	journal.Set(rec)
	cfg := Config{
		APIKeys:          map[string]string{digest("key-app"): "mobile-banking"},
		AuditorKeys:      map[string]string{digest("key-auditor"): "internal-audit"},
		DelegationAdmins: map[string]bool{"mobile-banking": true},
	}
	srv, err := New(cfg, Deps{Decider: rec, Policies: loadedPolicies(), Registry: prometheus.NewRegistry(),
		Delegations: delegation.NewService(delegation.Config{Store: st, Journal: &journal, ReaderApplications: []string{"mobile-banking"}}), // it chooses an id below
		Auditor:     audit.Service{Trail: l}, AdminLog: rec})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(checkedByContract(t, srv.Handler()))
	t.Cleanup(hs.Close)
	send := func(key, method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	code, body := send("key-app", http.MethodPost, "/access/v1/evaluation", evalBody(`{"type":"user","id":"alice"}`, `{"name":"read"}`, `{"type":"record","id":"record-1"}`))
	var ans struct {
		Context struct {
			ID string `json:"decision_id"`
		} `json:"context"`
	}
	if err := json.Unmarshal([]byte(body), &ans); code != http.StatusOK || err != nil || ans.Context.ID == "" {
		t.Fatalf("evaluation: %d %s", code, body)
	}
	poa := `{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"bob"},
		"basis":"power_of_attorney","source":"self_declared","scope":["view_statements"],"valid_until":"2041-01-01T00:00:00Z"}`
	code, body = send("key-app", http.MethodPost, "/v1/delegations", poa)
	var d delegation.Delegation
	if err := json.Unmarshal([]byte(body), &struct{ Delegation *delegation.Delegation }{&d}); code != http.StatusCreated || err != nil {
		t.Fatalf("offer: %d %s", code, body)
	}
	if code, body := send("key-app", http.MethodPost, "/v1/delegations/"+d.ID+"/revoke", `{"actor":{"type":"user","id":"alice"}}`); code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, body)
	}

	for _, tc := range []struct {
		name, key, path string
		code            int
		want            string
	}{
		{"no key", "", "/v1/audit/decisions", http.StatusForbidden, "auditor key"},
		{"an application's key", "key-app", "/v1/audit/decisions", http.StatusForbidden, "auditor key"},
		{"query", "key-auditor", "/v1/audit/decisions?subject=user:alice&result=allow", http.StatusOK, `"matched":1`},
		{"a malformed filter", "key-auditor", "/v1/audit/decisions?subject=alice", http.StatusBadRequest, "type:id"},
		{"a malformed time", "key-auditor", "/v1/audit/decisions?since=yesterday", http.StatusBadRequest, "RFC 3339"},
		{"a bad limit", "key-auditor", "/v1/audit/decisions?limit=0", http.StatusBadRequest, "limit"},
		{"explain", "key-auditor", "/v1/audit/decisions/" + ans.Context.ID, http.StatusOK, "ALLOWED"},
		{"explain an unknown id", "key-auditor", "/v1/audit/decisions/nope", http.StatusNotFound, "no such decision"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := send(tc.key, http.MethodGet, tc.path, "")
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("GET %s: %d %s, want %d with %q", tc.path, code, body, tc.code, tc.want)
			}
		})
	}

	var actions []string
	if err := l.Scan(0, l.Size(), func(r trail.Record) error {
		if r.Kind == recorder.KindAdmin {
			var b recorder.AdminBody
			if err := json.Unmarshal(r.Body, &b); err != nil {
				return err
			}
			actions = append(actions, b.Action+" by "+b.Application)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(actions, "; ")
	want := "delegation.offer by mobile-banking; delegation.revoke by mobile-banking; " +
		"trail.read by internal-audit; trail.read by internal-audit; trail.read by internal-audit"
	if got != want {
		t.Fatalf("admin records:\n %s\nwant\n %s", got, want)
	}

	// The trail fails: the change is refused before it is applied.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	code, body = send("key-app", http.MethodPost, "/v1/delegations", strings.Replace(poa, "{", `{"id":"dlg-unrecorded",`, 1))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "nothing was changed (trail_unavailable)") {
		t.Fatalf("offer with the trail closed: %d %s", code, body)
	}
	if _, err := st.Get(context.Background(), "dlg-unrecorded"); !errors.Is(err, delegation.ErrNotFound) {
		t.Fatalf("the unrecorded offer was stored: %v", err)
	}
}
