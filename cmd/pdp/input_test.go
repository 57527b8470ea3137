package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/api"
	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// Issue "Trustworthy as shipped", B9 and D14–D19: what the PDP accepts as
// input, each case through the real server over HTTP (or the auditor
// commands on its trail).

// nbDecide posts an evaluation body as an application and decodes the
// answer (status 200 required).
func (s *server) nbDecide(t *testing.T, app, body string) nbDecision {
	t.Helper()
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

// wantError checks a 4xx answer: its status and that its error names want.
func wantError(t *testing.T, code int, data []byte, wantCode int, want string) {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if code != wantCode || json.Unmarshal(data, &e) != nil || !strings.Contains(e.Error, want) {
		t.Fatalf("got %d %.300s, want %d with an error naming %q", code, data, wantCode, want)
	}
}

// B9: a batch over http.max_batch items is refused before anything is
// decided; search pages are bounded by it too.
func TestInputBatchBounded(t *testing.T) {
	items := func(n int) string {
		one := `{"resource":{"type":"account","id":"acc-alice"}}`
		return `{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"context":{"purpose":"account_servicing"},
			"evaluations":[` + strings.TrimSuffix(strings.Repeat(one+",", n), ",") + `]}`
	}
	// The todo example knows its entities, so action search answers there.
	actions := `{"subject":{"type":"user","id":"` + morty + `"},"resource":` + mortyDoc
	type page struct {
		Page *struct {
			NextToken string `json:"next_token"`
		} `json:"page"`
		Results []struct {
			Name string `json:"name"`
		} `json:"results"`
	}
	search := func(t *testing.T, s *server, body string) page {
		t.Helper()
		code, data := s.do(t, http.MethodPost, "/access/v1/search/action", body)
		var p page
		if code != http.StatusOK || json.Unmarshal(data, &p) != nil {
			t.Fatalf("action search: %d %s", code, data)
		}
		return p
	}
	var all []string
	t.Run("default 1000", func(t *testing.T) {
		s := startNorthbank(t)
		code, data := s.do(t, http.MethodPost, "/access/v1/evaluations", items(1001), demoKey("mobile-banking")...)
		wantError(t, code, data, http.StatusRequestEntityTooLarge, "at most 1000")
		code, data = s.do(t, http.MethodPost, "/access/v1/evaluations", items(1000), demoKey("mobile-banking")...)
		if code != http.StatusOK || strings.Count(string(data), `"decision":true`) != 1000 {
			t.Fatalf("1000 items: %d %.300s", code, data)
		}
		todo := startServer(t, "--dir", todoDir)
		code, data = todo.do(t, http.MethodPost, "/access/v1/search/action", actions+`,"page":{"limit":1001}}`)
		wantError(t, code, data, http.StatusBadRequest, "page.limit 1001")
		for _, r := range search(t, todo, actions+`}`).Results {
			all = append(all, r.Name)
		}
		if len(all) < 2 {
			t.Fatalf("morty may do %v on his todo: the next case needs two actions", all)
		}
	})
	t.Run("max_batch 1 pages a search that asked for everything", func(t *testing.T) {
		if len(all) < 2 {
			t.Skip("needs the default case")
		}
		t.Setenv("PDP_HTTP_MAX_BATCH", "1")
		s := startNorthbank(t)
		code, data := s.do(t, http.MethodPost, "/access/v1/evaluations", items(2), demoKey("mobile-banking")...)
		wantError(t, code, data, http.StatusRequestEntityTooLarge, "at most 1 per request")
		todo := startServer(t, "--dir", todoDir)
		var got []string
		p := search(t, todo, actions+`}`)
		for {
			if len(p.Results) != 1 {
				t.Fatalf("a page of %d results, want 1", len(p.Results))
			}
			got = append(got, p.Results[0].Name)
			if p.Page == nil || p.Page.NextToken == "" {
				break
			}
			p = search(t, todo, actions+`,"page":{"token":"`+p.Page.NextToken+`"}}`)
		}
		if !slices.Equal(got, all) {
			t.Fatalf("pages gave %v, want %v", got, all)
		}
	})
}

// D14: a payment acting on a delegation limited to one currency must name
// the currency.
func TestInputCurrencyMissing(t *testing.T) {
	s := startNorthbank(t)
	for _, tc := range []struct {
		name, subject, account, forWhom, extra string
		allowed                                bool
		reason                                 string
	}{
		{"no currency", "bob", "acc-alice", "alice", `,"amount":250`, false, "currency_missing"},
		{"empty currency", "bob", "acc-alice", "alice", `,"amount":250,"currency":""`, false, "currency_missing"},
		{"currency not a string (the schema says String)", "bob", "acc-alice", "alice", `,"amount":250,"currency":978`, false, "invalid_input"},
		{"EUR", "bob", "acc-alice", "alice", `,"amount":250,"currency":"EUR"`, true, ""},
		{"eur", "bob", "acc-alice", "alice", `,"amount":250,"currency":"eur"`, true, ""},
		{"USD", "bob", "acc-alice", "alice", `,"amount":250,"currency":"USD"`, false, "delegation_out_of_scope"},
		{"a guardian's delegation has no currency limit", "dave", "acc-carol", "carol", `,"amount":500`, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := s.nbEvaluate(t, tc.subject, "make_payment", tc.account, forUser(tc.forWhom, tc.extra))
			want := []string{}
			if tc.reason != "" {
				want = []string{tc.reason}
			}
			if d.Decision != tc.allowed || !slices.Equal(d.Context.Reasons, want) {
				t.Fatalf("got %v %v, want %v %v", d.Decision, d.Context.Reasons, tc.allowed, want)
			}
			if tc.reason == "currency_missing" && !slices.Equal(d.Context.Delegations, []string{"poa-alice-bob"}) {
				t.Fatalf("the deny names delegations %v, want the one it looked at", d.Context.Delegations)
			}
		})
	}
}

// D15: a delegation accepted is in force on the very next call, whatever
// the fraction of a second its window opened at.
func TestInputDelegationInForceAtOnce(t *testing.T) {
	s := startNorthbank(t)
	for i := range 3 {
		// Start early in a second, so that the calls below fall in the
		// second valid_from is in.
		for now := time.Now(); now.Nanosecond() < 50e6 || now.Nanosecond() > 300e6; now = time.Now() {
			time.Sleep(10 * time.Millisecond)
		}
		agent := fmt.Sprintf("trudy%d", i)
		offer := `{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"` + agent + `"},
			"basis":"power_of_attorney","source":"self_declared","scope":["view_statements"],
			"valid_from":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","valid_until":"2041-01-01T00:00:00Z"}`
		code, data := s.do(t, http.MethodPost, "/v1/delegations", offer, demoKey("mobile-banking")...)
		var ans struct {
			Delegation struct {
				ID string `json:"id"`
			} `json:"delegation"`
		}
		if code != http.StatusCreated || json.Unmarshal(data, &ans) != nil {
			t.Fatalf("offer: %d %s", code, data)
		}
		code, data = s.do(t, http.MethodPost, "/v1/delegations/"+ans.Delegation.ID+"/accept", `{"actor":{"type":"user","id":"`+agent+`"}}`, demoKey("mobile-banking")...)
		if code != http.StatusOK {
			t.Fatalf("accept: %d %s", code, data)
		}
		d := s.nbEvaluate(t, agent, "view_statements", "acc-alice", forUser("alice", ""))
		if !d.Decision {
			t.Fatalf("%s right after accepting: denied %v (%s)", agent, d.Context.Reasons, d.Context.DelegationStatus)
		}
	}
}

// D16: offers and consents naming what the schema does not declare, or a
// window already over, are refused with 422 and the reason.
func TestInputOffersMatchTheSchema(t *testing.T) {
	s := startNorthbank(t)
	offer := func(principal, agent, scope, resources, from, until string) string {
		return `{"actor":` + principal + `,"principal":` + principal + `,"agent":` + agent + `,
			"basis":"power_of_attorney","source":"self_declared","scope":` + scope + `,"resources":` + resources + `,
			"valid_from":"` + from + `","valid_until":"` + until + `"}`
	}
	const (
		alice = `{"type":"user","id":"alice"}`
		vic   = `{"type":"user","id":"victor"}`
		acc   = `[{"type":"account","id":"acc-alice"}]`
		from  = "2026-01-01T00:00:00Z"
		until = "2041-01-01T00:00:00Z"
	)
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"a typo in the scope", offer(alice, vic, `["view_statment"]`, acc, from, until), http.StatusUnprocessableEntity, `action "view_statment" is not declared`},
		{"an undeclared agent type", offer(alice, `{"type":"robot","id":"r2"}`, `["view_statements"]`, acc, from, until), http.StatusUnprocessableEntity, `agent: type "robot" is not declared`},
		{"an undeclared principal type", offer(`{"type":"robot","id":"r2"}`, vic, `["view_statements"]`, acc, from, until), http.StatusUnprocessableEntity, `principal: type "robot" is not declared`},
		{"an undeclared resource type", offer(alice, vic, `["view_statements"]`, `[{"type":"vault","id":"v1"}]`, from, until), http.StatusUnprocessableEntity, `type "vault" is not declared`},
		{"a user as the resource", offer(alice, vic, `["view_statements"]`, `[{"type":"user","id":"alice"}]`, from, until), http.StatusUnprocessableEntity, "user:alice is not a resource of the scope"},
		{"a window already over", offer(alice, vic, `["view_statements"]`, acc, "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"), http.StatusUnprocessableEntity, "valid_until 2025-01-01T00:00:00Z is not in the future"},
		{"a sound offer", offer(alice, vic, `["view_statements","make_payment"]`, acc, from, until), http.StatusCreated, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, data := s.do(t, http.MethodPost, "/v1/delegations", tc.body, demoKey("mobile-banking")...)
			if tc.code == http.StatusCreated {
				if code != tc.code {
					t.Fatalf("%d %s", code, data)
				}
				return
			}
			wantError(t, code, data, tc.code, tc.want)
		})
	}
	t.Run("a consent for a subject of an undeclared type", func(t *testing.T) {
		give := `{"subject":{"type":"robot","id":"r2"},"purpose":"account_information_sharing","jurisdiction":"DE",
			"notice":{"uri":"https://budget.example/consent","version":3,"language":"de"}}`
		code, data := s.do(t, http.MethodPost, "/v1/consents/give", give, demoKey("budget-app")...)
		wantError(t, code, data, http.StatusUnprocessableEntity, `subject.type "robot" is not declared`)
	})
}

// D17: a body naming a member twice is refused on every endpoint, and the
// auditor endpoints refuse query parameters they do not know.
func TestInputDuplicateNames(t *testing.T) {
	t.Setenv("PDP_TRAIL_MODE", pdpserver.TrailSync)
	t.Setenv("PDP_TRAIL_DIR", filepath.Join(t.TempDir(), "trail"))
	s := startNorthbank(t)
	for _, tc := range []struct {
		name, app, path, body string
	}{
		{"evaluation", "mobile-banking", "/access/v1/evaluation",
			`{"subject":{"type":"user","id":"mallory","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`},
		{"evaluation, names in another case", "mobile-banking", "/access/v1/evaluation",
			`{"subject":{"type":"user","id":"mallory","ID":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`},
		{"evaluation context", "mobile-banking", "/access/v1/evaluation",
			`{"subject":{"type":"user","id":"bob"},"action":{"name":"make_payment"},"resource":{"type":"account","id":"acc-alice"},
			"context":{"purpose":"account_servicing","on_behalf_of":{"type":"user","id":"alice"},"amount":5000,"amount":250,"currency":"EUR"}}`},
		{"evaluations item", "mobile-banking", "/access/v1/evaluations",
			`{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"context":{"purpose":"account_servicing"},
			"evaluations":[{"resource":{"type":"account","id":"acc-carol"},"resource":{"type":"account","id":"acc-alice"}}]}`},
		{"search", "mobile-banking", "/access/v1/search/action",
			`{"subject":{"type":"user","id":"alice"},"resource":{"type":"account","id":"acc-carol"},"resource":{"type":"account","id":"acc-alice"}}`},
		{"delegation offer", "mobile-banking", "/v1/delegations",
			`{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"mallory","id":"walter"},
			"basis":"power_of_attorney","source":"self_declared","scope":["view_statements"],"valid_until":"2041-01-01T00:00:00Z"}`},
		{"delegation change", "mobile-banking", "/v1/delegations/poa-alice-peggy/accept",
			`{"actor":{"type":"user","id":"mallory","id":"peggy"}}`},
		{"consent", "budget-app", "/v1/consents/give",
			`{"subject":{"type":"user","id":"judy"},"purpose":"account_information_sharing","jurisdiction":"US-CA","jurisdiction":"DE",
			"notice":{"uri":"https://budget.example/consent","version":3,"language":"de"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, data := s.do(t, http.MethodPost, tc.path, tc.body, demoKey(tc.app)...)
			wantError(t, code, data, http.StatusBadRequest, "duplicate member name")
		})
	}
	auditor := []string{"Authorization", "Bearer demo-key-auditor"}
	d := s.nbEvaluate(t, "alice", "view_statements", "acc-alice", `{"purpose":"account_servicing"}`)
	if !d.Decision {
		t.Fatalf("alice views her statements: %v", d.Context.Reasons)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"a misspelt filter", "/v1/audit/decisions?subjet=user:alice", `unknown query parameter "subjet"`},
		{"a filter given twice", "/v1/audit/decisions?subject=user:alice&subject=user:bob", `"subject" is given 2 times`},
		{"a parameter on explain", "/v1/audit/decisions/some-id?verbose=1", `unknown query parameter "verbose"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, data := s.do(t, http.MethodGet, tc.path, "", auditor...)
			wantError(t, code, data, http.StatusBadRequest, tc.want)
		})
	}
	code, data := s.do(t, http.MethodGet, "/v1/audit/decisions?subject=user:alice&limit=5", "", auditor...)
	if code != http.StatusOK {
		t.Fatalf("a sound audit query: %d %s", code, data)
	}
}

// D18: ids and contexts the relationship store would refuse get their own
// reason (a search: 400), never facts_unavailable or 503, and one such item
// does not fail its batch; the decisions replay to the same answer.
func TestInputFactsRefusedInput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trail")
	t.Setenv("PDP_TRAIL_MODE", pdpserver.TrailSync)
	t.Setenv("PDP_TRAIL_DIR", dir)
	s := startNorthbank(t)
	big := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		name, body, reason string
	}{
		{"a subject id SpiceDB cannot hold", `{"subject":{"type":"user","id":"alice smith"},"action":{"name":"view_statements"},
			"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`, "invalid_id"},
		{"a resource id SpiceDB cannot hold", `{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},
			"resource":{"type":"account","id":"acc-alice@bank"},"context":{"purpose":"account_servicing"}}`, "invalid_id"},
		{"an on_behalf_of id SpiceDB cannot hold", `{"subject":{"type":"user","id":"bob"},"action":{"name":"view_statements"},
			"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing","on_behalf_of":{"type":"user","id":"al ice"}}}`, "invalid_id"},
		{"a context over the caveat limit", `{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},
			"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing","note":"` + big + `"}}`, "context_too_large"},
		{"an account id whose data subject is looked up for consent", `{"subject":{"type":"user","id":"alice"},"action":{"name":"share_account_information"},
			"resource":{"type":"account","id":"acc alice"},"context":{"purpose":"account_information_sharing"}}`, "invalid_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := "mobile-banking"
			if strings.Contains(tc.body, "account_information_sharing") {
				app = "budget-app"
			}
			d := s.nbDecide(t, app, tc.body)
			if d.Decision || !slices.Equal(d.Context.Reasons, []string{tc.reason}) {
				t.Fatalf("got %v %v, want a deny %s", d.Decision, d.Context.Reasons, tc.reason)
			}
		})
	}
	t.Run("a batch answers its sound items", func(t *testing.T) {
		code, data := s.do(t, http.MethodPost, "/access/v1/evaluations", `{"action":{"name":"view_statements"},"context":{"purpose":"account_servicing"},
			"resource":{"type":"account","id":"acc-alice"},
			"evaluations":[{"subject":{"type":"user","id":"alice smith"}},{"subject":{"type":"user","id":"alice"}}]}`, demoKey("mobile-banking")...)
		var ans struct {
			Evaluations []nbDecision `json:"evaluations"`
		}
		if code != http.StatusOK || json.Unmarshal(data, &ans) != nil || len(ans.Evaluations) != 2 {
			t.Fatalf("%d %s", code, data)
		}
		if a, b := ans.Evaluations[0], ans.Evaluations[1]; a.Decision || !slices.Equal(a.Context.Reasons, []string{"invalid_id"}) || !b.Decision {
			t.Fatalf("got %v %v and %v %v, want a deny invalid_id and an allow", a.Decision, a.Context.Reasons, b.Decision, b.Context.Reasons)
		}
	})
	for _, tc := range []struct{ name, path, body, want string }{
		{"subject search about an odd resource id", "/access/v1/search/subject",
			`{"subject":{"type":"user"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc alice"},"context":{"purpose":"account_servicing"}}`, `account id "acc alice"`},
		{"resource search about an odd subject id", "/access/v1/search/resource",
			`{"subject":{"type":"user","id":"alice:smith"},"action":{"name":"view_statements"},"resource":{"type":"account"},"context":{"purpose":"account_servicing"}}`, `user id "alice:smith"`},
		{"search with a context over the caveat limit", "/access/v1/search/resource",
			`{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account"},"context":{"purpose":"account_servicing","note":"` + big + `"}}`, "caveat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, data := s.do(t, http.MethodPost, tc.path, tc.body, demoKey("mobile-banking")...)
			wantError(t, code, data, http.StatusBadRequest, tc.want)
		})
	}
	if r := s.logs.find("WARN", "relationship facts unavailable"); r != nil {
		t.Errorf("refused input logged as an outage: %v", r)
	}
	s.stop(t)
	code, out, errOut := pdpRun("replay", "--dir", dir, "--json", "--quiet")
	var rep struct {
		Decisions, Reproduced int
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK || rep.Decisions != 7 || rep.Reproduced != 7 {
		t.Fatalf("replay: %d %+v %v\n%s\n%s", code, rep, err, out, errOut)
	}
}

// D19: the auditor's text output escapes control characters from recorded
// values; JSON output stays JSON.
func TestInputAuditorOutputEscaped(t *testing.T) {
	bundle := copyBundle(t, todoDir)
	dir := filepath.Join(t.TempDir(), "trail")
	url, stop := serveTrailBundle(t, pdpserver.TrailSync, dir, bundle)
	const evil = `eve\u001b]0;owned\u0007\u001b[2J\r\nFORGED allow\u202e`
	res, err := http.Post(url+"/access/v1/evaluation", "application/json",
		strings.NewReader(`{"subject":{"type":"user","id":"`+evil+`"},"action":{"name":"can_create_todo"},"resource":{"type":"todo","id":"t1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var a answer
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("evaluation: %d %v", res.StatusCode, err)
	}
	res.Body.Close()
	stop()

	proposed := copyBundle(t, todoDir)
	if err := os.WriteFile(filepath.Join(proposed, "policies", "open.cedar"), []byte("permit (principal, action, resource);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	raw := func(out string) bool { return strings.ContainsAny(out, "\x1b\x07\r\u202e") }
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"audit query", []string{"audit", "query", "--dir", dir, "--result", "deny"}},
		{"explain", []string{"explain", "--dir", dir, a.Context.DecisionID}},
		{"replay, what-if", []string{"replay", "--dir", dir, "--policies", proposed, "--quiet"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := pdpRun(tc.args...)
			if code != exitOK || raw(out) || !strings.Contains(out, `eve\x1b]0;owned\x07\x1b[2J\x0d\x0aFORGED allow\u202e`) || strings.Contains(out, "\nFORGED") {
				t.Fatalf("%s: %d\n%q\n%s", tc.name, code, out, errOut)
			}
			code, out, errOut = pdpRun(append(tc.args, "--json")...)
			var v any
			if code != exitOK || json.Unmarshal([]byte(out), &v) != nil || strings.ContainsAny(out, "\x1b\x07\r") {
				t.Fatalf("%s --json: %d %q %s", tc.name, code, out, errOut)
			}
		})
	}
}

// B9: http.max_batch is a configuration key with a default of 1,000; a
// negative value is refused at start.
func TestInputMaxBatchConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		env  map[string]string
		want int
		err  error
	}{
		{"default", "", nil, 1000, nil},
		{"file", "http:\n  max_batch: 50\n", nil, 50, nil},
		{"environment", "", map[string]string{"PDP_HTTP_MAX_BATCH": "7"}, 7, nil},
		{"negative", "", map[string]string{"PDP_HTTP_MAX_BATCH": "-1"}, 0, api.ErrMaxBatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.file, tc.env)
			if err == nil {
				err = c.Validate()
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || c.HTTP.MaxBatch != tc.want {
				t.Fatalf("max_batch %d, error %v; want %d", c.HTTP.MaxBatch, err, tc.want)
			}
		})
	}
}
