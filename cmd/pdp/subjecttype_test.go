package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/reason"
	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// postAnswer posts body to url+path (with key, if any) and decodes a 200
// answer into out.
func postAnswer(t *testing.T, url, path, key, body string, out any) {
	t.Helper()
	code, data, err := postJSON(url, path, key, body)
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST %s: %d %s %v", path, code, data, err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("POST %s: %s: %v", path, data, err)
	}
}

func isMismatch(a sidecarAnswer) bool {
	return !a.Decision && slices.Equal(a.Context.Reasons, []string{reason.EntityTypeMismatch}) && len(a.Context.Policies) == 0
}

// TestRoleSubjectRefusedOverHTTP serves the Todo example with a sync
// trail: a subject {"type":"role","id":"admin"} no longer takes the admin
// role's permits on the evaluation, batch and search endpoints (a 200 deny
// with entity_type_mismatch and a message, as for an unknown type), a user
// in that role still does, and `pdp replay` reproduces every decision the
// server recorded, the refusals included.
func TestRoleSubjectRefusedOverHTTP(t *testing.T) {
	trailDir := filepath.Join(t.TempDir(), "trail")
	url, stop := serveTrailBundle(t, pdpserver.TrailSync, trailDir, todoDir)
	const rick = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs" // admin, evil_genius
	role := `{"type":"role","id":"admin"}`
	user := `{"type":"user","id":"` + rick + `"}`
	del := `{"name":"can_delete_todo"}`

	for _, c := range []struct {
		name, subject, action, resource string
		allowed                         bool
	}{
		{"role admin deletes a todo", role, del, rickDoc, false},
		{"role evil_genius updates a todo", `{"type":"Role","id":"evil_genius"}`, `{"name":"can_update_todo"}`, rickDoc, false},
		{"role viewer lists todos", `{"type":"role","id":"viewer"}`, `{"name":"can_read_todos"}`, mortyDoc, false},
		{"a todo as the subject", `{"type":"todo","id":"t1"}`, `{"name":"can_read_todos"}`, mortyDoc, false},
		{"a role as the resource", user, `{"name":"can_read_user"}`, role, false},
		{"rick, an admin user, deletes", user, del, rickDoc, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var a sidecarAnswer
			postAnswer(t, url, "/access/v1/evaluation", "", `{"subject":`+c.subject+`,"action":`+c.action+`,"resource":`+c.resource+`}`, &a)
			if c.allowed {
				if !a.Decision {
					t.Fatalf("%+v, want allowed", a)
				}
				return
			}
			if !isMismatch(a) || !strings.Contains(a.Context.Message, "applies to") {
				t.Fatalf("%+v, want a deny %s with a message", a, reason.EntityTypeMismatch)
			}
		})
	}

	t.Run("batch", func(t *testing.T) {
		var b struct {
			Evaluations []sidecarAnswer `json:"evaluations"`
		}
		postAnswer(t, url, "/access/v1/evaluations", "", `{"action":`+del+`,"resource":`+rickDoc+`,"evaluations":[{"subject":`+role+`},{"subject":`+user+`}]}`, &b)
		if len(b.Evaluations) != 2 || !isMismatch(b.Evaluations[0]) || !b.Evaluations[1].Decision {
			t.Fatalf("%+v, want the role refused and rick allowed", b.Evaluations)
		}
	})

	t.Run("subject search", func(t *testing.T) {
		var s struct {
			Results []struct{ Type, ID string } `json:"results"`
		}
		postAnswer(t, url, "/access/v1/search/subject", "", `{"subject":{"type":"role"},"action":`+del+`,"resource":`+rickDoc+`}`, &s)
		if len(s.Results) != 0 {
			t.Fatalf("roles that may delete: %+v, want none", s.Results)
		}
		postAnswer(t, url, "/access/v1/search/subject", "", `{"subject":{"type":"user"},"action":`+del+`,"resource":`+rickDoc+`}`, &s)
		if len(s.Results) != 1 || s.Results[0].ID != rick {
			t.Fatalf("users that may delete: %+v, want rick", s.Results)
		}
	})

	stop()
	code, out, errOut := pdpRun("replay", "--dir", trailDir, "--json", "--quiet")
	var rep audit.ReplayReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK {
		t.Fatalf("replay: %d %v\n%s\n%s", code, err, out, errOut)
	}
	if rep.Decisions < 8 || rep.Reproduced != rep.Decisions {
		t.Fatalf("replay: %+v, want every decision reproduced", rep)
	}
}

// TestOrganisationSubjectRefusedThroughSidecar serves Northbank (SpiceDB,
// delegation records and consent ledger in memory) and a sidecar beside
// mobile-banking: acme, an organisation that owns acc-acme in SpiceDB,
// named as the subject is refused with entity_type_mismatch by the central
// PDP and by the sidecar (cold and from its cache), and so are an account
// and an application; alice, a user, still views her statements.
func TestOrganisationSubjectRefusedThroughSidecar(t *testing.T) {
	dir := t.TempDir()
	central := northbankWithTrail(t, dir, "127.0.0.1:0")
	key := "demo-key-mobile-banking"
	sc := startSidecar(t, central.URL, key, filepath.Join(dir, "spool"), nil)
	ask := func(subject, resource string) string {
		return `{"subject":` + subject + `,"action":{"name":"view_statements"},"resource":` + resource + `,"context":{"purpose":"account_servicing"}}`
	}
	for _, c := range []struct {
		name, body string
		allowed    bool
	}{
		{"acme views its statements itself", ask(`{"type":"organisation","id":"acme"}`, `{"type":"account","id":"acc-acme"}`), false},
		{"an account as the subject", ask(`{"type":"account","id":"acc-alice"}`, `{"type":"account","id":"acc-alice"}`), false},
		{"the application as the subject", ask(`{"type":"application","id":"mobile-banking"}`, `{"type":"account","id":"acc-alice"}`), false},
		{"an organisation as the resource", ask(`{"type":"user","id":"erin"}`, `{"type":"organisation","id":"acme"}`), false},
		{"alice views her statements", ask(`{"type":"user","id":"alice"}`, `{"type":"account","id":"acc-alice"}`), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, via := range []struct{ name, url string }{{"central", central.URL}, {"sidecar cold", sc}, {"sidecar warm", sc}} {
				var a sidecarAnswer
				postAnswer(t, via.url, "/access/v1/evaluation", key, c.body, &a)
				if c.allowed != a.Decision || (!c.allowed && !isMismatch(a)) {
					t.Errorf("via %s: %+v, want allowed %v (else %s)", via.name, a, c.allowed, reason.EntityTypeMismatch)
				}
			}
		})
	}
}
