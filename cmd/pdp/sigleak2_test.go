package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCascadeRevokerReadsNoSubDelegation: alice's power of attorney to
// bob is offered through advisor-portal; bob accepts it and sub-delegates
// to erin through mobile-banking. alice revokes the parent through
// advisor-portal: the sub-delegation is revoked with it, its history says
// by whom and through which application (marked cascade), yet
// advisor-portal still reads it 404 — ending a parent does not make an
// application a party to the sub-delegations another application made.
func TestCascadeRevokerReadsNoSubDelegation(t *testing.T) {
	s := startNorthbankReceivers(t, map[*ssfReceiver]string{})
	a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/delegations", `{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"bob"},
		"basis":"power_of_attorney","source":"self_declared","scope":["view_statements"],"resources":[{"type":"account","id":"acc-alice"}],"max_depth":1,"valid_until":"2041-01-01T00:00:00Z"}`, "")
	if a.Code != http.StatusCreated && a.Code != http.StatusOK || a.Delegation.ID == "" {
		t.Fatalf("advisor-portal offers: %d %s", a.Code, a.Body)
	}
	parent := a.Delegation.ID
	if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/"+parent+"/accept", actorBody("bob"), ""); a.Code != http.StatusOK {
		t.Fatalf("bob accepts through mobile-banking: %d %s", a.Code, a.Body)
	}
	a = s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations", `{"actor":{"type":"user","id":"bob"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"erin"},
		"basis":"sub_delegation","source":"self_declared","scope":["view_statements"],"resources":[{"type":"account","id":"acc-alice"}],"valid_until":"2040-01-01T00:00:00Z","parent":"`+parent+`"}`, "")
	if a.Code != http.StatusCreated && a.Code != http.StatusOK || a.Delegation.ID == "" {
		t.Fatalf("bob sub-delegates through mobile-banking: %d %s", a.Code, a.Body)
	}
	sub := a.Delegation.ID
	if code, body := s.do(t, http.MethodGet, "/v1/delegations/"+sub, "", demoKey("advisor-portal")...); code != http.StatusNotFound {
		t.Fatalf("before: advisor-portal reads the sub-delegation: %d %s, want 404", code, body)
	}
	if a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/delegations/"+parent+"/revoke", actorBody("alice"), ""); a.Code != http.StatusOK {
		t.Fatalf("alice revokes the parent through advisor-portal: %d %s", a.Code, a.Body)
	}
	if code, body := s.do(t, http.MethodGet, "/v1/delegations/"+sub, "", demoKey("advisor-portal")...); code != http.StatusNotFound {
		t.Fatalf("after the cascade: advisor-portal reads the sub-delegation: %d %s, want 404", code, body)
	}
	if code, body := s.do(t, http.MethodGet, "/v1/delegations?parent="+parent, "", demoKey("advisor-portal")...); code != http.StatusOK || strings.Contains(string(body), sub) {
		t.Errorf("advisor-portal lists the parent's sub-delegations: %d %s, want none", code, body)
	}
	code, body := s.do(t, http.MethodGet, "/v1/delegations/"+sub, "", demoKey("mobile-banking")...)
	if code != http.StatusOK {
		t.Fatalf("mobile-banking, which made it, reads it: %d %s", code, body)
	}
	var d struct {
		Status  string `json:"status"`
		History []struct {
			By struct {
				Application string `json:"application"`
			} `json:"by"`
			Cascade bool `json:"cascade"`
		} `json:"history"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	h := d.History
	if d.Status != "revoked" || len(h) == 0 || h[len(h)-1].By.Application != "advisor-portal" || !h[len(h)-1].Cascade {
		t.Errorf("the sub-delegation: %s, want revoked, its last event advisor-portal's, marked cascade", body)
	}
}

// TestOutgoingOutboxRecheckedAfterRename: SETs waiting in the outbox while
// the receiver was down and named no application are, once it names
// advisor-portal, checked against the records: the revoke advisor-portal
// may read goes out (it was thrown away before), the one it may not read
// is dropped and counted (pdp_signals_sent_total{outcome="dropped"}).
func TestOutgoingOutboxRecheckedAfterRename(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PDP_DELEGATIONS_PATH", filepath.Join(dir, "delegations.jsonl"))
	t.Setenv("PDP_CONSENT_PATH", filepath.Join(dir, "consent.jsonl"))
	rcv := newSSFReceiver(t)
	rcv.down.Store(true)
	s := startNorthbankReceivers(t, map[*ssfReceiver]string{rcv: ""})
	a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/delegations", `{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"mallory"},
		"basis":"power_of_attorney","source":"self_declared","scope":["view_statements"],"resources":[{"type":"account","id":"acc-alice"}],"valid_until":"2041-01-01T00:00:00Z"}`, "")
	viaAdvisor := a.Delegation.ID
	if viaAdvisor == "" {
		t.Fatalf("advisor-portal offers: %d %s", a.Code, a.Body)
	}
	if a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/delegations/"+viaAdvisor+"/revoke", actorBody("alice"), ""); a.Code != http.StatusOK {
		t.Fatalf("revoke through advisor-portal: %d %s", a.Code, a.Body)
	}
	if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/poa-alice-bob/revoke", actorBody("alice"), ""); a.Code != http.StatusOK {
		t.Fatalf("revoke through mobile-banking: %d %s", a.Code, a.Body)
	}
	s.stop(t)
	if n := len(rcv.sets()); n != 0 {
		t.Fatalf("the receiver was down, yet took %d SETs", n)
	}
	box, err := os.ReadFile(filepath.Join(dir, "signals-outbox.jsonl"))
	if err != nil || strings.Count(string(box), `"op":"queue"`) != 2 {
		t.Fatalf("outbox: %v\n%s", err, box)
	}

	// It names advisor-portal now, and is up (once it knows the new
	// PDP's address, to verify what it takes).
	s = startNorthbankReceivers(t, map[*ssfReceiver]string{rcv: "advisor-portal"})
	rcv.down.Store(false)
	// A later change advisor-portal reads: after it, everything queued
	// before has come (SETs come in order).
	a = s.admin(t, "advisor-portal", http.MethodPost, "/v1/delegations", `{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"oscar"},
		"basis":"power_of_attorney","source":"self_declared","scope":["view_statements"],"resources":[{"type":"account","id":"acc-alice"}],"valid_until":"2041-01-01T00:00:00Z"}`, "")
	marker := a.Delegation.ID
	if a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/delegations/"+marker+"/revoke", actorBody("alice"), ""); a.Code != http.StatusOK {
		t.Fatalf("the marker revoke: %d %s", a.Code, a.Body)
	}
	eventually(t, "the receiver takes the marker", func() bool {
		ids := rcv.delegationIDs(t)
		return len(ids) > 0 && ids[len(ids)-1] == marker
	})
	if got := strings.Join(rcv.delegationIDs(t), ","); got != viaAdvisor+","+marker {
		t.Errorf("took %s, want %s,%s (not poa-alice-bob); log:\n%s", got, viaAdvisor, marker, s.logs)
	}
	if n := s.metric(t, `pdp_signals_sent_total{outcome="dropped",receiver="`+rcv.URL+`/ssf/events"}`); n != 1 {
		t.Errorf("dropped counted %v, want 1", n)
	}
	if s.logs.find("WARN", "may not read it now: dropped") == nil {
		t.Error("the drop is not logged")
	}
}
