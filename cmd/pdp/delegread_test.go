package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDelegationReadsPerApplication: over HTTP against the Northbank
// example, with the advisor portal also a delegation administrator, each
// application reads only the delegations it took part in (the back office,
// delegations.reader_applications, reads them all): a record it may not
// see answers exactly as one that does not exist, a list leaves it out,
// and `pdp delegation` meets the same rule.
func TestDelegationReadsPerApplication(t *testing.T) {
	t.Setenv("PDP_DELEGATIONS_ADMIN_APPLICATIONS", "mobile-banking,backoffice,advisor-portal")
	s := startNorthbank(t)

	get := func(t *testing.T, app, path string) (int, string) {
		t.Helper()
		code, data := s.do(t, http.MethodGet, path, "", demoKey(app)...)
		return code, string(data)
	}
	ids := func(t *testing.T, app, query string) []string {
		t.Helper()
		code, data := get(t, app, "/v1/delegations?"+query)
		var ans struct {
			Delegations []struct {
				ID string `json:"id"`
			} `json:"delegations"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(data), &ans) != nil || ans.Delegations == nil {
			t.Fatalf("list %s as %s: %d %s", query, app, code, data)
		}
		out := []string{}
		for _, d := range ans.Delegations {
			out = append(out, d.ID)
		}
		slices.Sort(out)
		return out
	}
	hidden := func(t *testing.T, app, id string) {
		t.Helper()
		code, body := get(t, app, "/v1/delegations/"+id)
		mcode, missing := get(t, app, "/v1/delegations/poa-nobody")
		if code != http.StatusNotFound || mcode != http.StatusNotFound || body != strings.Replace(missing, "poa-nobody", id, 1) {
			t.Fatalf("%s reading %s: %d %s; a missing id: %d %s", app, id, code, body, mcode, missing)
		}
	}
	alices := []string{"poa-alice-bob", "poa-alice-oscar", "poa-alice-peggy", "poa-alice-victor"}

	t.Run("an administrator that took part in none sees none", func(t *testing.T) {
		for _, id := range []string{"poa-alice-bob", "guardian-carol-dave", "rep-acme-erin", "sub-acme-frank"} {
			hidden(t, "advisor-portal", id)
		}
		for _, q := range []string{"principal=user:alice", "agent=user:bob", "agent=user:dave", "parent=rep-acme-erin"} {
			if got := ids(t, "advisor-portal", q); len(got) != 0 {
				t.Fatalf("%s: %v, want none", q, got)
			}
		}
	})
	t.Run("mobile-banking reads what it offered and accepted, not the registers' records", func(t *testing.T) {
		code, body := get(t, "mobile-banking", "/v1/delegations/poa-alice-bob")
		if code != http.StatusOK || !strings.Contains(body, `"history"`) {
			t.Fatalf("poa-alice-bob: %d %s", code, body)
		}
		if got := ids(t, "mobile-banking", "principal=user:alice"); !slices.Equal(got, alices) {
			t.Fatalf("alice's: %v, want %v", got, alices)
		}
		hidden(t, "mobile-banking", "guardian-carol-dave")
		hidden(t, "mobile-banking", "rep-acme-erin")
		if got := ids(t, "mobile-banking", "agent=user:dave"); len(got) != 0 {
			t.Fatalf("dave's: %v, want none", got)
		}
		// erin's sub-delegation to frank was made through mobile-banking:
		// it is listed under its parent, whose record stays hidden.
		if got := ids(t, "mobile-banking", "parent=rep-acme-erin"); !slices.Equal(got, []string{"sub-acme-frank"}) {
			t.Fatalf("under rep-acme-erin: %v", got)
		}
	})
	t.Run("the back office reads every record", func(t *testing.T) {
		for _, id := range []string{"poa-alice-bob", "guardian-carol-dave", "rep-acme-erin", "sub-acme-frank"} {
			if code, body := get(t, "backoffice", "/v1/delegations/"+id); code != http.StatusOK {
				t.Fatalf("%s: %d %s", id, code, body)
			}
		}
		if got := ids(t, "backoffice", "principal=user:alice"); !slices.Equal(got, alices) {
			t.Fatalf("alice's: %v, want %v", got, alices)
		}
	})
	t.Run("an application that may neither administer nor read", func(t *testing.T) {
		if code, body := get(t, "budget-app", "/v1/delegations/poa-alice-bob"); code != http.StatusForbidden {
			t.Fatalf("%d %s, want 403", code, body)
		}
	})
	t.Run("pdp delegation meets the same rule", func(t *testing.T) {
		t.Setenv("PDP_API_KEY", "demo-key-advisor-portal")
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"delegation", "--server", s.URL, "get", "poa-alice-bob"}, strings.NewReader(""), &out, &errOut)
		if code != exitFailure || !strings.Contains(errOut.String(), "HTTP 404") || strings.Contains(out.String(), "bob") {
			t.Fatalf("get: exit %d\n%s\n%s", code, out.String(), errOut.String())
		}
		out.Reset()
		errOut.Reset()
		code = run(context.Background(), []string{"delegation", "--server", s.URL, "list", "--principal", "user:alice"}, strings.NewReader(""), &out, &errOut)
		if code != exitOK || strings.Contains(out.String(), `"id"`) {
			t.Fatalf("list: exit %d\n%s\n%s", code, out.String(), errOut.String())
		}
	})
	t.Run("a refused re-confirmation names no one the application may not read", func(t *testing.T) {
		code, data := s.do(t, http.MethodPost, "/v1/dormancy/delegations/guardian-carol-dave/reconfirm", `{"actor":{"type":"user","id":"dave"}}`, demoKey("mobile-banking")...)
		if code != http.StatusForbidden || strings.Contains(string(data), "user:carol") {
			t.Fatalf("%d %s, want 403 without the principal", code, data)
		}
	})
	t.Run("a refused sub-delegation names no agent of a parent the application may not read", func(t *testing.T) {
		// mallory takes no part in the guardianship mobile-banking may not
		// read: it is answered as a missing parent (422), naming no one
		// (TestDelegationIDsCannotBeProbed).
		offer := `{"actor":{"type":"user","id":"mallory"},"principal":{"type":"user","id":"carol"},"agent":{"type":"user","id":"uncle"},
			"basis":"sub_delegation","source":"self_declared","scope":["view_statements"],"parent":"guardian-carol-dave",
			"valid_from":"2026-01-01T00:00:00Z","valid_until":"2041-01-01T00:00:00Z"}`
		code, data := s.do(t, http.MethodPost, "/v1/delegations", offer, demoKey("mobile-banking")...)
		if code != http.StatusUnprocessableEntity || strings.Contains(string(data), "user:dave") || !strings.Contains(string(data), "does not exist") {
			t.Fatalf("%d %s, want 422 as a missing parent, without the guardian", code, data)
		}
	})
	t.Run("changes keep their authority; a change makes its application a party", func(t *testing.T) {
		// mallory takes no part: 404 as an unknown id (TestDelegationIDsCannotBeProbed)
		code, data := s.do(t, http.MethodPost, "/v1/delegations/poa-alice-bob/suspend", `{"actor":{"type":"user","id":"mallory"}}`, demoKey("advisor-portal")...)
		if code != http.StatusNotFound {
			t.Fatalf("mallory suspends through advisor-portal: %d %s, want 404", code, data)
		}
		code, data = s.do(t, http.MethodPost, "/v1/delegations/poa-alice-bob/suspend", `{"actor":{"type":"user","id":"bob"}}`, demoKey("advisor-portal")...)
		if code != http.StatusForbidden {
			t.Fatalf("bob, the agent, suspends through advisor-portal: %d %s, want 403", code, data)
		}
		code, data = s.do(t, http.MethodPost, "/v1/delegations/poa-alice-bob/suspend", `{"actor":{"type":"user","id":"alice"},"reason":"away"}`, demoKey("advisor-portal")...)
		if code != http.StatusOK {
			t.Fatalf("alice suspends through advisor-portal: %d %s", code, data)
		}
		if code, body := get(t, "advisor-portal", "/v1/delegations/poa-alice-bob"); code != http.StatusOK || !strings.Contains(body, `"suspended"`) {
			t.Fatalf("after its change: %d %s", code, body)
		}
		if got := ids(t, "advisor-portal", "principal=user:alice"); !slices.Equal(got, []string{"poa-alice-bob"}) {
			t.Fatalf("alice's after its change: %v", got)
		}
	})
}

// TestDelegationIDsCannotBeProbed: over HTTP against the Northbank
// example, with the advisor portal also a delegation administrator that
// took part in none of the records: no change tells an application that
// may not read a record, for an actor who takes no part in it, anything
// an unknown id would not — every change answers 404 with the body of an
// unknown id, a sub-delegation offer under it 422 with the body of a
// missing parent (its contents unshown), a re-confirmation 404, a
// representative's consent naming it 422 as naming an unknown id; only a
// register or whole-view application chooses an offer's id; and with
// actor tokens a re-confirmation is refused unproven before the record is
// read.
func TestDelegationIDsCannotBeProbed(t *testing.T) {
	t.Setenv("PDP_DELEGATIONS_ADMIN_APPLICATIONS", "mobile-banking,backoffice,advisor-portal")
	s := startNorthbank(t)
	post := func(t *testing.T, app, path, body string) (int, string) {
		t.Helper()
		code, data := s.do(t, http.MethodPost, path, body, demoKey(app)...)
		return code, string(data)
	}
	mallory := `{"actor":{"type":"user","id":"mallory"}}`
	// asUnknown: path, for id, answers as for an id that does not exist.
	asUnknown := func(t *testing.T, app, path, id, body string, want int) {
		t.Helper()
		mcode, missing := post(t, app, strings.Replace(path, id, "dlg-nobody", 1), strings.Replace(body, id, "dlg-nobody", 1))
		code, got := post(t, app, path, body)
		if mcode != want || code != want || got != strings.Replace(missing, "dlg-nobody", id, -1) {
			t.Fatalf("%s %s: %d %s; for an unknown id: %d %s", app, path, code, got, mcode, missing)
		}
	}
	t.Run("changes by a stranger through an application that may not read the record", func(t *testing.T) {
		for _, c := range []struct{ op, id string }{
			{"accept", "poa-alice-peggy"}, {"revoke", "poa-alice-bob"}, {"renounce", "poa-alice-bob"},
			{"suspend", "poa-alice-bob"}, {"resume", "poa-alice-bob"}, {"revoke", "guardian-carol-dave"},
		} {
			asUnknown(t, "advisor-portal", "/v1/delegations/"+c.id+"/"+c.op, c.id, mallory, http.StatusNotFound)
			if !strings.HasPrefix(c.id, "poa-") {
				continue
			}
			// through mobile-banking, which made it and reads it: refused, as before
			if code, body := post(t, "mobile-banking", "/v1/delegations/"+c.id+"/"+c.op, mallory); code != http.StatusForbidden {
				t.Fatalf("%s %s through mobile-banking: %d %s, want 403", c.op, c.id, code, body)
			}
		}
	})
	t.Run("a sub-delegation offer under a parent the application may not read", func(t *testing.T) {
		// the reviewer's reproduction: mallory offers as her own principal
		offer := `{"actor":{"type":"user","id":"mallory"},"principal":{"type":"user","id":"mallory"},"agent":{"type":"user","id":"trent"},
			"basis":"sub_delegation","source":"self_declared","scope":["view_statements"],"parent":"poa-alice-bob",
			"valid_from":"2026-01-01T00:00:00Z","valid_until":"2041-01-01T00:00:00Z"}`
		asUnknown(t, "advisor-portal", "/v1/delegations", "poa-alice-bob", offer, http.StatusUnprocessableEntity)
		_, body := post(t, "advisor-portal", "/v1/delegations", offer)
		for _, leak := range []string{"user:alice", "user:bob", "max_depth", "principal"} {
			if strings.Contains(body, leak) {
				t.Fatalf("the refusal shows %s: %s", leak, body)
			}
		}
		// mobile-banking reads poa-alice-bob: the rule's refusal, as before
		if code, body := post(t, "mobile-banking", "/v1/delegations", offer); code != http.StatusUnprocessableEntity || !strings.Contains(body, "max_depth") {
			t.Fatalf("through mobile-banking: %d %s", code, body)
		}
	})
	t.Run("a re-confirmation by a stranger through an application that may not read it", func(t *testing.T) {
		asUnknown(t, "mobile-banking", "/v1/dormancy/delegations/guardian-carol-dave/reconfirm", "guardian-carol-dave", mallory, http.StatusNotFound)
		if code, body := post(t, "backoffice", "/v1/dormancy/delegations/guardian-carol-dave/reconfirm", mallory); code != http.StatusForbidden || !strings.Contains(body, "user:carol") {
			t.Fatalf("through backoffice: %d %s, want 403 naming the principal", code, body)
		}
	})
	t.Run("a representative's consent naming a delegation that is not the actor's", func(t *testing.T) {
		give := `{"subject":{"type":"user","id":"alice"},"actor":{"type":"user","id":"mallory"},"delegation":"poa-alice-bob",
			"purpose":"financial_advice","jurisdiction":"DE","notice":{"uri":"https://northbank.example/privacy/advice","version":1}}`
		stamp := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`) // the refusal says when
		mcode, missing := post(t, "advisor-portal", "/v1/consents/give", strings.Replace(give, "poa-alice-bob", "dlg-nobody", 1))
		code, got := post(t, "advisor-portal", "/v1/consents/give", give)
		missing = strings.ReplaceAll(stamp.ReplaceAllString(missing, "T"), "dlg-nobody", "poa-alice-bob")
		if mcode != http.StatusUnprocessableEntity || code != mcode || stamp.ReplaceAllString(got, "T") != missing {
			t.Fatalf("%d %s; for an unknown id: %d %s", code, got, mcode, missing)
		}
	})
	t.Run("only a register or whole-view application chooses an offer's id", func(t *testing.T) {
		offer := func(id string) string {
			return `{"id":"` + id + `","actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"trent"},
			"basis":"power_of_attorney","source":"self_declared","scope":["view_statements"],"valid_until":"2041-01-01T00:00:00Z"}`
		}
		for _, id := range []string{"poa-alice-bob", "poa-chosen"} {
			code, body := post(t, "advisor-portal", "/v1/delegations", offer(id))
			if code != http.StatusForbidden || !strings.Contains(body, "may not choose") {
				t.Fatalf("advisor-portal chooses %s: %d %s, want 403", id, code, body)
			}
		}
		if code, body := post(t, "backoffice", "/v1/delegations", offer("poa-alice-bob")); code != http.StatusConflict {
			t.Fatalf("backoffice, a taken id: %d %s, want 409", code, body)
		}
		if code, body := post(t, "backoffice", "/v1/delegations", offer("poa-chosen")); code != http.StatusCreated {
			t.Fatalf("backoffice, a free id: %d %s, want 201", code, body)
		}
		code, body := post(t, "advisor-portal", "/v1/delegations", strings.Replace(offer(""), `"id":"",`, "", 1))
		if code != http.StatusCreated || !strings.Contains(body, `"id":"dlg-`) {
			t.Fatalf("advisor-portal without an id: %d %s, want 201 with an id made", code, body)
		}
	})
	t.Run("a decision names the chain that decided it to whichever application asks", func(t *testing.T) {
		// Documented ("Who reads a delegation"): the answer to the
		// application's own question about its user acting for someone.
		// mobile-banking may not read carol's guardianship (the civil
		// register's record), yet dave acts for carol through it.
		d := s.nbAsk(t, "mobile-banking", `{"type":"user","id":"dave"}`, "view_statements", `{"type":"account","id":"acc-carol"}`, forUser("carol", ""))
		if !d.Decision || !slices.Equal(d.Context.Delegations, []string{"guardian-carol-dave"}) || d.Context.DelegationStatus != "active" {
			t.Fatalf("%+v", d)
		}
		if code, body := s.do(t, http.MethodGet, "/v1/delegations/guardian-carol-dave", "", demoKey("mobile-banking")...); code != http.StatusNotFound {
			t.Fatalf("its record: %d %s, want 404", code, body)
		}
	})
}

// TestReconfirmProvesTheActorFirstOverHTTP: with actor tokens on, a
// re-confirmation without the actor's token is 401 actor_unproven whether
// the id exists or not and whoever the actor named — no oracle on the
// principal or the status without credentials.
func TestReconfirmProvesTheActorFirstOverHTTP(t *testing.T) {
	s := startNorthbankActorTokens(t)
	for _, id := range []string{"poa-alice-victor", "poa-alice-peggy", "dlg-nobody"} {
		for _, actor := range []string{"alice", "mallory"} {
			a := s.admin(t, "mobile-banking", http.MethodPost, "/v1/dormancy/delegations/"+id+"/reconfirm", `{"actor":{"type":"user","id":"`+actor+`"}}`, "")
			if a.Code != http.StatusUnauthorized || a.Reason != "actor_unproven" || strings.Contains(a.Body, id) {
				t.Fatalf("%s as %s without a token: %d %s, want 401 actor_unproven", id, actor, a.Code, a.Body)
			}
		}
	}
}
