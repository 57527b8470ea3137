package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
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
		offer := `{"actor":{"type":"user","id":"mallory"},"principal":{"type":"user","id":"carol"},"agent":{"type":"user","id":"uncle"},
			"basis":"sub_delegation","source":"self_declared","scope":["view_statements"],"parent":"guardian-carol-dave",
			"valid_from":"2026-01-01T00:00:00Z","valid_until":"2027-01-01T00:00:00Z"}`
		code, data := s.do(t, http.MethodPost, "/v1/delegations", offer, demoKey("mobile-banking")...)
		if code != http.StatusForbidden || strings.Contains(string(data), "user:dave") {
			t.Fatalf("%d %s, want 403 without the guardian", code, data)
		}
	})
	t.Run("changes keep their authority; a change makes its application a party", func(t *testing.T) {
		code, data := s.do(t, http.MethodPost, "/v1/delegations/poa-alice-bob/suspend", `{"actor":{"type":"user","id":"mallory"}}`, demoKey("advisor-portal")...)
		if code != http.StatusForbidden {
			t.Fatalf("mallory suspends through advisor-portal: %d %s, want 403", code, data)
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
