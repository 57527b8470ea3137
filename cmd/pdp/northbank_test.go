package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// northbank is the example bundle with delegated authority.
const northbank = "../../examples/northbank"

// nbDecision is the part of an evaluation answer these tests read.
type nbDecision struct {
	Decision bool `json:"decision"`
	Context  struct {
		Policies         []string `json:"policies"`
		Reasons          []string `json:"reasons"`
		Obligations      []string `json:"obligations"`
		Delegations      []string `json:"delegations"`
		DelegationStatus string   `json:"delegation_status"`
	} `json:"context"`
}

// demoKey is the example's API key of an application (examples/northbank/pdp.yaml).
func demoKey(app string) []string { return []string{"Authorization", "Bearer demo-key-" + app} }

func (s *server) nbEvaluate(t *testing.T, subject, action, resource, ctx string) nbDecision {
	t.Helper()
	return s.nbAsk(t, "mobile-banking", `{"type":"user","id":"`+subject+`"}`, action, `{"type":"account","id":"`+resource+`"}`, ctx)
}

// nbAsk asks one evaluation as an application.
func (s *server) nbAsk(t *testing.T, app, subject, action, resource, ctx string) nbDecision {
	t.Helper()
	body := `{"subject":` + subject + `,"action":{"name":"` + action + `"},"resource":` + resource + `,"context":` + ctx + `}`
	code, data := s.do(t, http.MethodPost, "/access/v1/evaluation", body, demoKey(app)...)
	if code != http.StatusOK {
		t.Fatalf("evaluation: %d %s", code, data)
	}
	var d nbDecision
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func forUser(id, extra string) string {
	return `{"purpose":"account_servicing","on_behalf_of":{"type":"user","id":"` + id + `"}` + extra + `}`
}

func forAcme(extra string) string {
	return `{"purpose":"account_servicing","on_behalf_of":{"type":"organisation","id":"acme"}` + extra + `}`
}

// startNorthbank serves the example with its configuration (API keys
// included), the stores in a temporary folder unless the environment
// names others.
func startNorthbank(t *testing.T, args ...string) *server {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"PDP_POLICY_DIR":          northbank,
		"PDP_RELATIONS_BOOTSTRAP": filepath.Join(northbank, "relationships.txt"),
		"PDP_DELEGATIONS_SEED":    filepath.Join(northbank, "delegations.json"),
		"PDP_DELEGATIONS_PATH":    filepath.Join(dir, "delegations.jsonl"),
		"PDP_CONSENT_SEED":        filepath.Join(northbank, "consents.json"),
		"PDP_CONSENT_PATH":        filepath.Join(dir, "consent.jsonl"),
		"PDP_LOG_FORMAT":          "json", // the test reads the log
	} {
		if os.Getenv(k) == "" {
			t.Setenv(k, v)
		}
	}
	return startServer(t, append([]string{"--config", filepath.Join(northbank, "pdp.yaml")}, args...)...)
}

// TestNorthbankDelegations runs the delegation rows of the Northbank story
// over HTTP against the real server, with the records in a file and SpiceDB
// in memory, and with both on PostgreSQL: the same behaviour suite.
func TestNorthbankDelegations(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		northbankScenario(t)
	})
	t.Run("postgres", func(t *testing.T) {
		uri := testDatabase(t)
		t.Setenv("PDP_RELATIONS_ENGINE", "postgres")
		t.Setenv("PDP_RELATIONS_POSTGRES_URI", uri)
		t.Setenv("PDP_DELEGATIONS_ENGINE", "postgres")
		t.Setenv("PDP_DELEGATIONS_POSTGRES_URI", uri)
		t.Setenv("PDP_CONSENT_ENGINE", "postgres")
		t.Setenv("PDP_CONSENT_POSTGRES_URI", uri)
		northbankScenario(t)
	})
}

func northbankScenario(t *testing.T) {
	s := startNorthbank(t)

	check := func(t *testing.T, d nbDecision, allowed bool, reasons ...string) {
		t.Helper()
		if reasons == nil {
			reasons = []string{}
		}
		if d.Decision != allowed || !slices.Equal(d.Context.Reasons, reasons) {
			t.Fatalf("got %v %v (delegation %s %v), want %v %v", d.Decision, d.Context.Reasons,
				d.Context.DelegationStatus, d.Context.Delegations, allowed, reasons)
		}
	}
	change := func(t *testing.T, id, op, actor string) map[string]any {
		t.Helper()
		code, data := s.do(t, http.MethodPost, "/v1/delegations/"+id+"/"+op, `{"actor":{"type":"user","id":"`+actor+`"},"reason":"test"}`, demoKey("backoffice")...)
		if code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", op, id, code, data)
		}
		var ans map[string]any
		if err := json.Unmarshal(data, &ans); err != nil {
			t.Fatal(err)
		}
		if rev, _ := ans["revision"].(string); rev == "" {
			t.Fatalf("%s %s answered no revision token: %s", op, id, data)
		}
		return ans
	}

	pay := func(amount string) string {
		return forUser("alice", `,"amount":`+amount+`,"currency":"EUR"`)
	}
	t.Run("bob pays 250 for alice, relying on his power of attorney", func(t *testing.T) {
		d := s.nbEvaluate(t, "bob", "make_payment", "acc-alice", pay("250"))
		check(t, d, true)
		if !slices.Equal(d.Context.Delegations, []string{"poa-alice-bob"}) || !slices.Equal(d.Context.Policies, []string{"delegate-pays"}) {
			t.Fatalf("relied on %v by %v", d.Context.Delegations, d.Context.Policies)
		}
	})
	t.Run("bob's 1500 is out of scope", func(t *testing.T) {
		check(t, s.nbEvaluate(t, "bob", "make_payment", "acc-alice", pay("1500")), false, "delegation_out_of_scope")
	})
	t.Run("oscar expired, peggy not accepted", func(t *testing.T) {
		check(t, s.nbEvaluate(t, "oscar", "view_statements", "acc-alice", forUser("alice", "")), false, "delegation_expired")
		check(t, s.nbEvaluate(t, "peggy", "view_statements", "acc-alice", forUser("alice", "")), false, "delegation_not_accepted")
	})
	t.Run("dave pays for carol as her guardian", func(t *testing.T) {
		check(t, s.nbEvaluate(t, "dave", "make_payment", "acc-carol", forUser("carol", `,"amount":500`)), true)
	})
	t.Run("frank views acme's statements and may not pay", func(t *testing.T) {
		d := s.nbEvaluate(t, "frank", "view_statements", "acc-acme", forAcme(""))
		check(t, d, true)
		if !slices.Equal(d.Context.Delegations, []string{"sub-acme-frank", "rep-acme-erin"}) {
			t.Fatalf("chain %v", d.Context.Delegations)
		}
		check(t, s.nbEvaluate(t, "frank", "make_payment", "acc-acme", forAcme(`,"amount":10`)), false, "delegation_out_of_scope")
	})
	t.Run("after erin's delegation is revoked, frank is denied on the very next call", func(t *testing.T) {
		change(t, "rep-acme-erin", "revoke", "registrar")
		check(t, s.nbEvaluate(t, "frank", "view_statements", "acc-acme", forAcme("")), false, "delegation_revoked")
		check(t, s.nbEvaluate(t, "erin", "make_payment", "acc-acme", forAcme(`,"amount":10`)), false, "delegation_revoked")
		var frank map[string]any
		code, data := s.do(t, http.MethodGet, "/v1/delegations/sub-acme-frank", "", demoKey("backoffice")...)
		if code != http.StatusOK || json.Unmarshal(data, &frank) != nil || frank["status"] != "revoked" {
			t.Fatalf("frank's record after the cascade: %d %s", code, data)
		}
	})
	t.Run("after alice revokes bob's power of attorney, bob is denied at once", func(t *testing.T) {
		change(t, "poa-alice-bob", "revoke", "alice")
		check(t, s.nbEvaluate(t, "bob", "make_payment", "acc-alice", pay("250")), false, "delegation_revoked")
	})
	t.Run("peggy accepts, then views", func(t *testing.T) {
		change(t, "poa-alice-peggy", "accept", "peggy")
		check(t, s.nbEvaluate(t, "peggy", "view_statements", "acc-alice", forUser("alice", "")), true)
		change(t, "poa-alice-peggy", "suspend", "alice")
		check(t, s.nbEvaluate(t, "peggy", "view_statements", "acc-alice", forUser("alice", "")), false, "delegation_suspended")
		change(t, "poa-alice-peggy", "resume", "alice")
		check(t, s.nbEvaluate(t, "peggy", "view_statements", "acc-alice", forUser("alice", "")), true)
		change(t, "poa-alice-peggy", "renounce", "peggy")
		check(t, s.nbEvaluate(t, "peggy", "view_statements", "acc-alice", forUser("alice", "")), false, "delegation_revoked")
	})
	t.Run("a new power of attorney: offered, accepted, used, with its history", func(t *testing.T) {
		offer := `{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"trent"},
			"basis":"power_of_attorney","source":"self_declared","scope":["view_statements"],
			"valid_from":"2026-01-01T00:00:00Z","valid_until":"2041-01-01T00:00:00Z"}`
		code, data := s.do(t, http.MethodPost, "/v1/delegations", offer, demoKey("mobile-banking")...)
		if code != http.StatusCreated {
			t.Fatalf("offer: %d %s", code, data)
		}
		var ans struct {
			Delegation struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			} `json:"delegation"`
		}
		if err := json.Unmarshal(data, &ans); err != nil || ans.Delegation.Status != "offered" {
			t.Fatalf("offer answer %s", data)
		}
		id := ans.Delegation.ID
		check(t, s.nbEvaluate(t, "trent", "view_statements", "acc-alice", forUser("alice", "")), false, "delegation_not_accepted")
		change(t, id, "accept", "trent")
		check(t, s.nbEvaluate(t, "trent", "view_statements", "acc-alice", forUser("alice", "")), true)

		code, data = s.do(t, http.MethodGet, "/v1/delegations?agent=user:trent", "", demoKey("mobile-banking")...)
		if code != http.StatusOK || !bytes.Contains(data, []byte(`"accepted"`)) {
			t.Fatalf("list by agent: %d %s", code, data)
		}
	})
	t.Run("the rules answer with clear 4xx errors", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, path, body string
			code                     int
			want                     string
		}{
			{"someone else accepts", http.MethodPost, "/v1/delegations/poa-alice-oscar/accept", `{"actor":{"type":"user","id":"mallory"}}`, http.StatusForbidden, ""},
			{"unknown id", http.MethodGet, "/v1/delegations/nope", "", http.StatusNotFound, ""},
			{"malformed offer", http.MethodPost, "/v1/delegations", `{"principal":`, http.StatusBadRequest, ""},
			{"sub-delegation beyond the parent", http.MethodPost, "/v1/delegations",
				`{"actor":{"type":"user","id":"dave"},"principal":{"type":"user","id":"carol"},"agent":{"type":"user","id":"uncle"},
				"basis":"sub_delegation","source":"self_declared","scope":["view_statements"],"parent":"guardian-carol-dave",
				"valid_from":"2026-01-01T00:00:00Z","valid_until":"2040-01-01T00:00:00Z"}`, http.StatusUnprocessableEntity, "sub-delegat"},
			{"list without a filter", http.MethodGet, "/v1/delegations", "", http.StatusBadRequest, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				code, data := s.do(t, tc.method, tc.path, tc.body, demoKey("mobile-banking")...)
				if code != tc.code || !strings.Contains(string(data), tc.want) || !bytes.Contains(data, []byte(`"error"`)) {
					t.Fatalf("%d %s, want %d with %q", code, data, tc.code, tc.want)
				}
			})
		}
	})
}

// TestNorthbankSuites runs the example's policy tests with `pdp test`.
func TestNorthbankSuites(t *testing.T) {
	var out bytes.Buffer
	code := run(context.Background(), []string{"test", northbank}, strings.NewReader(""), &out, io.Discard)
	if code != exitOK || !strings.Contains(out.String(), " 0 failed") {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
}

// TestDelegationCLI drives the admin API through `pdp delegation`.
func TestDelegationCLI(t *testing.T) {
	s := startNorthbank(t)
	t.Setenv("PDP_API_KEY", "demo-key-mobile-banking")
	cli := func(stdin string, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"delegation", "--server", s.URL}, args...), strings.NewReader(stdin), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, errOut := cli("", "list", "--principal", "user:alice")
	if code != exitOK || strings.Count(out, `"basis"`) != 4 { // bob, oscar, peggy, victor
		t.Fatalf("list: %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = cli("", "revoke", "poa-alice-bob", "--actor", "user:alice", "--reason", "lost trust")
	if code != exitOK || !strings.Contains(out, `"revoked"`) || !strings.Contains(out, "lost trust") {
		t.Fatalf("revoke: %d\n%s\n%s", code, out, errOut)
	}
	offer := filepath.Join(t.TempDir(), "offer.json")
	if err := os.WriteFile(offer, []byte(`{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},
		"agent":{"type":"user","id":"walter"},"basis":"power_of_attorney","source":"self_declared","scope":["view_statements"],
		"valid_until":"2041-01-01T00:00:00Z"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut = cli("", "offer", offer); code != exitOK || !strings.Contains(out, `"offered"`) {
		t.Fatalf("offer: %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut = cli("", "accept", "poa-alice-oscar", "--actor", "user:mallory"); code != exitFailure || !strings.Contains(errOut, "HTTP 403") {
		t.Fatalf("forbidden accept: %d %s", code, errOut)
	}
	if code, _, _ = cli("", "accept", "poa-alice-oscar"); code != exitUsage {
		t.Fatalf("accept without --actor: exit %d, want %d", code, exitUsage)
	}
}
