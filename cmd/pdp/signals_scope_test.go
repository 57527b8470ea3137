package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startNorthbankReceivers serves Northbank with one receiver of the
// outgoing signals per entry of rcvs (receiver → the application it
// names, "" for none).
func startNorthbankReceivers(t *testing.T, rcvs map[*ssfReceiver]string) *server {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(northbank, "pdp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	token := filepath.Join(dir, "app-token")
	writeFile(t, token, "app-ssf-secret\n")
	list := "    retry_max: 200ms\n    receivers:\n"
	for r, app := range rcvs {
		list += "      - endpoint: " + r.URL + "/ssf/events\n        audience: https://app.northbank.example/\n        token_file: " + token + "\n"
		if app != "" {
			list += "        application: " + app + "\n"
		}
	}
	cfg := replaceOnce(t, string(data), "    # receivers:\n", list)
	// advisor-portal may change delegations too (it then takes part).
	cfg = replaceOnce(t, cfg, "admin_applications: [mobile-banking, backoffice]", "admin_applications: [mobile-banking, advisor-portal, backoffice]")
	path := filepath.Join(dir, "pdp.yaml")
	writeFile(t, path, cfg)
	s := startNorthbank(t, "--config", path)
	for r := range rcvs {
		r.pdpURL = s.URL
	}
	return s
}

// delegationIDs are the delegation_id of each delegation SET r took, in
// order.
func (r *ssfReceiver) delegationIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	for _, s := range r.sets() {
		var p struct {
			ID string `json:"delegation_id"`
		}
		if err := json.Unmarshal(s.Events[0].Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.ID != "" {
			ids = append(ids, p.ID)
		}
	}
	return ids
}

// TestOutgoingSignalsScopedToTheReceiversApplication: a receiver of the
// outgoing signals that names its application (mobile-banking,
// advisor-portal) gets a delegation's revoke or suspend only when that
// application may read the record (GET /v1/delegations/{id} answers it,
// not 404), and a consent withdrawal only when that application may read
// it by the consent read rule (advisor-portal, party to the grant; not
// mobile-banking); the SIEM naming no application gets every one, and the
// PDP warned at start that it does.
func TestOutgoingSignalsScopedToTheReceiversApplication(t *testing.T) {
	siem, mobile, advisor := newSSFReceiver(t), newSSFReceiver(t), newSSFReceiver(t)
	s := startNorthbankReceivers(t, map[*ssfReceiver]string{siem: "", mobile: "mobile-banking", advisor: "advisor-portal"})

	if w := s.logs.find("WARN", "names no application"); w == nil || w["receiver"] != siem.URL+"/ssf/events" {
		t.Errorf("no warning naming the SIEM receiver: %v", w)
	}
	s.logs.mu.Lock()
	for _, r := range []*ssfReceiver{mobile, advisor} {
		for _, rec := range s.logs.records {
			if rec["level"] == "WARN" && rec["receiver"] == r.URL+"/ssf/events" {
				t.Errorf("a warning about a receiver naming its application: %v", rec)
			}
		}
	}
	s.logs.mu.Unlock()

	// 1. The register (backoffice) suspends carol's guardian: neither
	// mobile-banking nor advisor-portal may read it.
	if a := s.admin(t, "backoffice", http.MethodPost, "/v1/delegations/guardian-carol-dave/suspend", actorBody("registrar"), ""); a.Code != http.StatusOK {
		t.Fatalf("the register suspends: %d %s", a.Code, a.Body)
	}
	// 2. alice offers mallory a power of attorney through advisor-portal
	// and revokes it there: advisor-portal took part, mobile-banking did
	// not and reads it 404.
	a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/delegations", `{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"mallory"},
		"basis":"power_of_attorney","source":"self_declared","scope":["view_statements"],"resources":[{"type":"account","id":"acc-alice"}],"valid_until":"2041-01-01T00:00:00Z"}`, "")
	if a.Code != http.StatusCreated && a.Code != http.StatusOK {
		t.Fatalf("advisor-portal offers: %d %s", a.Code, a.Body)
	}
	viaAdvisor := a.Delegation.ID
	if viaAdvisor == "" {
		t.Fatalf("no id in %s", a.Body)
	}
	if a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/delegations/"+viaAdvisor+"/revoke", actorBody("alice"), ""); a.Code != http.StatusOK {
		t.Fatalf("alice revokes through advisor-portal: %d %s", a.Code, a.Body)
	}
	if code, body := s.do(t, http.MethodGet, "/v1/delegations/"+viaAdvisor, "", demoKey("mobile-banking")...); code != http.StatusNotFound {
		t.Fatalf("mobile-banking reads %s: %d %s, want 404", viaAdvisor, code, body)
	}
	// 3. alice revokes bob's power of attorney through mobile-banking,
	// which advisor-portal may not read.
	if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/poa-alice-bob/revoke", actorBody("alice"), ""); a.Code != http.StatusOK {
		t.Fatalf("alice revokes through mobile-banking: %d %s", a.Code, a.Body)
	}
	if code, body := s.do(t, http.MethodGet, "/v1/delegations/poa-alice-bob", "", demoKey("advisor-portal")...); code != http.StatusNotFound {
		t.Fatalf("advisor-portal reads poa-alice-bob: %d %s, want 404", code, body)
	}

	// 4. alice withdraws her financial_advice grant (to advisor-portal)
	// through advisor-portal: the consent read rule lets advisor-portal
	// and the SIEM learn of it, not mobile-banking.
	if a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/consents/withdraw",
		`{"subject":{"type":"user","id":"alice"},"purpose":"financial_advice","reason":"changed my mind"}`, ""); a.Code != http.StatusOK {
		t.Fatalf("alice withdraws: %d %s", a.Code, a.Body)
	}
	// 5. Last, a change all three read: alice offers oscar a power of
	// attorney through mobile-banking and revokes it through
	// advisor-portal. Each receiver's SETs come in the order of the
	// changes, so once it has this one, every SET queued for it is there.
	a = s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations", `{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"oscar"},
		"basis":"power_of_attorney","source":"self_declared","scope":["view_statements"],"resources":[{"type":"account","id":"acc-alice"}],"valid_until":"2041-01-01T00:00:00Z"}`, "")
	last := a.Delegation.ID
	if last == "" {
		t.Fatalf("mobile-banking offers: %d %s", a.Code, a.Body)
	}
	if a := s.admin(t, "advisor-portal", http.MethodPost, "/v1/delegations/"+last+"/revoke", actorBody("alice"), ""); a.Code != http.StatusOK {
		t.Fatalf("alice revokes through advisor-portal: %d %s", a.Code, a.Body)
	}
	for name, r := range map[string]*ssfReceiver{"siem": siem, "mobile-banking": mobile, "advisor-portal": advisor} {
		eventually(t, name+" takes the last revoke", func() bool {
			ids := r.delegationIDs(t)
			return len(ids) > 0 && ids[len(ids)-1] == last
		})
	}
	want := map[string]struct {
		r        *ssfReceiver
		ids      []string
		consents int
	}{
		"siem":           {siem, []string{"guardian-carol-dave", viaAdvisor, "poa-alice-bob", last}, 1},
		"mobile-banking": {mobile, []string{"poa-alice-bob", last}, 0},
		"advisor-portal": {advisor, []string{viaAdvisor, last}, 1},
	}
	for name, w := range want {
		if got := w.r.delegationIDs(t); strings.Join(got, ",") != strings.Join(w.ids, ",") {
			t.Errorf("%s took %v, want %v", name, got, w.ids)
		}
		consents := 0
		for _, set := range w.r.sets() {
			if set.Events[0].Type == "https://pdp.northbank.example/events/consent-withdrawn" {
				consents++
			}
		}
		if consents != w.consents {
			t.Errorf("%s took %d consent withdrawals, want %d", name, consents, w.consents)
		}
		w.r.mu.Lock()
		if len(w.r.errs) > 0 {
			t.Errorf("%s refused SETs: %v", name, w.r.errs)
		}
		w.r.mu.Unlock()
	}
}

// TestOutgoingReceiverUnknownApplicationRefused: a receiver naming an
// application that auth.api_keys does not hold stops the start, saying so.
func TestOutgoingReceiverUnknownApplicationRefused(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(northbank, "pdp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "pdp.yaml")
	writeFile(t, path, replaceOnce(t, string(data), "    # receivers:\n",
		"    receivers:\n      - endpoint: http://127.0.0.1:9/ssf/events\n        audience: https://app.northbank.example/\n        application: advisor-portl\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logs strings.Builder
	code := run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--config", path}, strings.NewReader(""), io.Discard, &logs)
	if code == exitOK || !strings.Contains(logs.String(), `application "advisor-portl" is not an application of auth.api_keys`) {
		t.Fatalf("serve: exit %d, log:\n%s", code, logs.String())
	}
}
