package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// dormancyAnswer is what these tests read of an evaluation.
type dormancyAnswer struct {
	Decision bool `json:"decision"`
	Context  struct {
		ID          string   `json:"decision_id"`
		Reasons     []string `json:"reasons"`
		Obligations []string `json:"obligations"`
	} `json:"context"`
}

func (s *server) dormancyAsk(t *testing.T, subject, action, resource, ctx string) dormancyAnswer {
	t.Helper()
	body := `{"subject":` + user(subject) + `,"action":{"name":"` + action + `"},"resource":{"type":"account","id":"` + resource + `"},"context":` + ctx + `}`
	code, data := s.do(t, http.MethodPost, "/access/v1/evaluation", body, demoKey("mobile-banking")...)
	if code != http.StatusOK {
		t.Fatalf("evaluation: %d %s", code, data)
	}
	var a dormancyAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func wantDormancy(t *testing.T, what string, a dormancyAnswer, allowed bool, reasons, obligations []string) {
	t.Helper()
	if reasons == nil {
		reasons = []string{}
	}
	if obligations == nil {
		obligations = []string{}
	}
	if a.Decision != allowed || !slices.Equal(a.Context.Reasons, reasons) || !slices.Equal(a.Context.Obligations, obligations) {
		t.Fatalf("%s: got %v %v %v, want %v %v %v", what, a.Decision, a.Context.Reasons, a.Context.Obligations, allowed, reasons, obligations)
	}
}

// dormancyReport is the part of the auditor's report these tests read.
type dormancyReport struct {
	Identities []struct {
		Subject          struct{ Type, ID string } `json:"subject"`
		Rules            []string                  `json:"rules"`
		DelegationsGiven []string                  `json:"delegations_given"`
		Consents         []string                  `json:"consents"`
	} `json:"identities"`
	Delegations []struct {
		ID   string `json:"id"`
		Rule string `json:"rule"`
	} `json:"delegations"`
	Revalidations []struct {
		Kind       string `json:"kind"`
		Delegation string `json:"delegation"`
		Source     string `json:"source"`
	} `json:"revalidations"`
}

func (s *server) dormancyReport(t *testing.T) dormancyReport {
	t.Helper()
	code, data := s.do(t, http.MethodGet, "/v1/audit/dormancy", "", "Authorization", "Bearer demo-key-auditor")
	if code != http.StatusOK {
		t.Fatalf("report: %d %s", code, data)
	}
	var r dormancyReport
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestNorthbankDormancy runs the dormancy rows of the Northbank story over
// HTTP against the real server, on the embedded default (files, SpiceDB in
// memory) and on PostgreSQL: heidi is asked to revalidate until the
// backoffice revalidates her; victor's unused power of attorney is
// dormant until alice (and nobody else) re-confirms it; the auditor's
// report lists exactly the seeded dormant identity and delegation, then
// the revalidations; explain names the rule, the last activity and the
// revalidation.
func TestNorthbankDormancy(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		dormancyScenario(t)
	})
	t.Run("postgres", func(t *testing.T) {
		uri := testDatabase(t)
		t.Setenv("PDP_RELATIONS_ENGINE", "postgres")
		t.Setenv("PDP_RELATIONS_POSTGRES_URI", uri)
		t.Setenv("PDP_DELEGATIONS_ENGINE", "postgres")
		t.Setenv("PDP_DELEGATIONS_POSTGRES_URI", uri)
		t.Setenv("PDP_CONSENT_ENGINE", "postgres")
		t.Setenv("PDP_CONSENT_POSTGRES_URI", uri)
		dormancyScenario(t)
	})
}

func dormancyScenario(t *testing.T) {
	s := startNorthbank(t)
	servicing := `{"purpose":"account_servicing"}`
	forAlice := `{"purpose":"account_servicing","on_behalf_of":{"type":"user","id":"alice"}}`

	rep := s.dormancyReport(t)
	if len(rep.Identities) != 1 || rep.Identities[0].Subject.ID != "heidi" ||
		!slices.Equal(rep.Identities[0].Rules, []string{"inactive-12-months", "inactive-24-months"}) ||
		!slices.Equal(rep.Identities[0].Consents, []string{"grant-heidi:marketing"}) {
		t.Fatalf("report identities: %+v", rep.Identities)
	}
	if len(rep.Delegations) != 1 || rep.Delegations[0].ID != "poa-alice-victor" || rep.Delegations[0].Rule != "power-of-attorney-unused-24-months" {
		t.Fatalf("report delegations: %+v", rep.Delegations)
	}
	if len(rep.Revalidations) != 0 {
		t.Fatalf("report revalidations: %+v", rep.Revalidations)
	}

	dormant := s.dormancyAsk(t, "heidi", "view_statements", "acc-heidi", servicing)
	wantDormancy(t, "heidi views, dormant", dormant, false, []string{"revalidation_required"}, []string{"identity_revalidation"})
	wantDormancy(t, "heidi pays, dormant", s.dormancyAsk(t, "heidi", "make_payment", "acc-heidi", `{"purpose":"account_servicing","amount":20,"currency":"EUR"}`),
		false, []string{"revalidation_required"}, []string{"identity_revalidation"})
	wantDormancy(t, "victor for alice, dormant", s.dormancyAsk(t, "victor", "view_statements", "acc-alice", forAlice),
		false, []string{"delegation_dormant"}, []string{"delegation_reconfirmation"})
	wantDormancy(t, "bob for alice", s.dormancyAsk(t, "bob", "view_statements", "acc-alice", forAlice), true, nil, nil)

	// Who may end a dormancy: the service refuses the others.
	for _, c := range []struct {
		name, app, path, actor string
		code                   int
	}{
		{"an application that is no dormancy admin", "mobile-banking", "/v1/dormancy/identities/user:heidi/revalidate", "heidi", http.StatusForbidden},
		{"the agent re-confirming his own power of attorney", "mobile-banking", "/v1/dormancy/delegations/poa-alice-victor/reconfirm", "victor", http.StatusForbidden},
		{"someone else re-confirming alice's delegation", "backoffice", "/v1/dormancy/delegations/poa-alice-victor/reconfirm", "bob", http.StatusForbidden},
		{"an application that may not carry re-confirmations", "budget-app", "/v1/dormancy/delegations/poa-alice-victor/reconfirm", "alice", http.StatusForbidden},
		{"an unknown delegation", "mobile-banking", "/v1/dormancy/delegations/poa-nobody/reconfirm", "alice", http.StatusNotFound},
		{"a delegation not in force", "mobile-banking", "/v1/dormancy/delegations/poa-alice-peggy/reconfirm", "alice", http.StatusUnprocessableEntity},
	} {
		code, data := s.do(t, http.MethodPost, c.path, `{"actor":`+user(c.actor)+`}`, demoKey(c.app)...)
		if code != c.code {
			t.Fatalf("%s: %d %s, want %d", c.name, code, data, c.code)
		}
	}
	for _, body := range []string{`{}`, `{"actor":{"type":"user"}}`, `{"actor":{"type":"user","id":"x"},"extra":1}`, `not json`} {
		if code, data := s.do(t, http.MethodPost, "/v1/dormancy/identities/user:heidi/revalidate", body, demoKey("backoffice")...); code != http.StatusBadRequest {
			t.Fatalf("body %s: %d %s, want 400", body, code, data)
		}
	}
	wantDormancy(t, "heidi still dormant after refused calls", s.dormancyAsk(t, "heidi", "view_statements", "acc-heidi", servicing),
		false, []string{"revalidation_required"}, []string{"identity_revalidation"})

	code, data := s.do(t, http.MethodPost, "/v1/dormancy/identities/user:heidi/revalidate",
		`{"actor":{"type":"staff","id":"kim"},"reason":"identity checked at the branch"}`, demoKey("backoffice")...)
	if code != http.StatusCreated || !strings.Contains(string(data), `"source":"admin"`) {
		t.Fatalf("revalidate heidi: %d %s", code, data)
	}
	back := s.dormancyAsk(t, "heidi", "view_statements", "acc-heidi", servicing)
	wantDormancy(t, "heidi views, revalidated", back, true, nil, nil)
	wantDormancy(t, "heidi pays, active again", s.dormancyAsk(t, "heidi", "make_payment", "acc-heidi", `{"purpose":"account_servicing","amount":20,"currency":"EUR"}`), true, nil, nil)

	code, data = s.do(t, http.MethodPost, "/v1/dormancy/delegations/poa-alice-victor/reconfirm", `{"actor":{"type":"user","id":"alice"}}`, demoKey("mobile-banking")...)
	if code != http.StatusCreated {
		t.Fatalf("alice re-confirms: %d %s", code, data)
	}
	wantDormancy(t, "victor for alice, re-confirmed", s.dormancyAsk(t, "victor", "view_statements", "acc-alice", forAlice), true, nil, nil)

	// The auditor's explanations name the rule, the last activity and the
	// revalidation; the records replay to the same answers.
	for _, c := range []struct {
		id   string
		want []string
	}{
		{dormant.Context.ID, []string{"Dormancy: user:heidi (last activity 2023-01-10 09:00:00Z", "past rule inactive-24-months (730 days)", "denied revalidation_required until the identity revalidates"}},
		{back.Context.ID, []string{"past rule inactive-24-months", "but revalidation rv-", "(admin, by staff:kim) ended it"}},
	} {
		code, data := s.do(t, http.MethodGet, "/v1/audit/decisions/"+c.id, "", "Authorization", "Bearer demo-key-auditor")
		if code != http.StatusOK {
			t.Fatalf("explain %s: %d %s", c.id, code, data)
		}
		for _, w := range c.want {
			if !strings.Contains(string(data), w) {
				t.Fatalf("explain %s lacks %q:\n%s", c.id, w, data)
			}
		}
		if !strings.Contains(string(data), `"outcome":"reproduced"`) {
			t.Fatalf("explain %s: not reproduced on replay:\n%s", c.id, data)
		}
	}

	rep = s.dormancyReport(t)
	if len(rep.Identities) != 0 || len(rep.Delegations) != 0 || len(rep.Revalidations) != 2 ||
		rep.Revalidations[0].Kind != "identity" || rep.Revalidations[1].Delegation != "poa-alice-victor" {
		t.Fatalf("report after: %+v", rep)
	}
	code, data = s.do(t, http.MethodGet, "/v1/audit/dormancy?format=csv", "", "Authorization", "Bearer demo-key-auditor")
	if code != http.StatusOK || !strings.HasPrefix(string(data), "section,id,subject") || strings.Count(string(data), "\nrevalidation,") != 2 {
		t.Fatalf("csv report: %d %s", code, data)
	}
	if code, data := s.do(t, http.MethodGet, "/v1/audit/dormancy", "", demoKey("backoffice")...); code != http.StatusForbidden {
		t.Fatalf("report with an application key: %d %s", code, data)
	}
}

// TestDormancyActorTokens: with auth.actor_tokens, a delegation's
// re-confirmation names its principal only with the principal's own
// token; the dormancy holds until then.
func TestDormancyActorTokens(t *testing.T) {
	s := startNorthbankActorTokens(t)
	forAlice := `{"purpose":"account_servicing","on_behalf_of":{"type":"user","id":"alice"}}`
	for _, c := range []struct{ name, token string }{{"no token", ""}, {"victor's token for alice", actorToken(t, "mobile-banking", "victor", nil)}} {
		if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/dormancy/delegations/poa-alice-victor/reconfirm", actorBody("alice"), c.token); a.Code != http.StatusUnauthorized || a.Reason != "actor_unproven" {
			t.Fatalf("%s: %d %s", c.name, a.Code, a.Body)
		}
	}
	wantDormancy(t, "still dormant", s.dormancyAsk(t, "victor", "view_statements", "acc-alice", forAlice),
		false, []string{"delegation_dormant"}, []string{"delegation_reconfirmation"})
	if a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/dormancy/delegations/poa-alice-victor/reconfirm", actorBody("alice"), actorToken(t, "mobile-banking", "alice", nil)); a.Code != http.StatusCreated {
		t.Fatalf("alice's own token: %d %s", a.Code, a.Body)
	}
	wantDormancy(t, "re-confirmed", s.dormancyAsk(t, "victor", "view_statements", "acc-alice", forAlice), true, nil, nil)

	// An identity's revalidation names its actor (a staff user) with that
	// user's token too.
	path := "/v1/dormancy/identities/user:heidi/revalidate"
	if a := s.admin(t, "backoffice", http.MethodPost, path, actorBody("kim"), ""); a.Code != http.StatusUnauthorized {
		t.Fatalf("revalidation without a token: %d %s", a.Code, a.Body)
	}
	if a := s.admin(t, "backoffice", http.MethodPost, path, actorBody("kim"), actorToken(t, "backoffice", "kim", nil)); a.Code != http.StatusCreated {
		t.Fatalf("revalidation with kim's token: %d %s", a.Code, a.Body)
	}
	wantDormancy(t, "heidi revalidated", s.dormancyAsk(t, "heidi", "view_statements", "acc-heidi", `{"purpose":"account_servicing"}`), true, nil, nil)
}
