package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/reason"
)

// TestReasonsOnTheWireAreCatalogued serves the Northbank example and
// provokes denies and admin refusals of many kinds over HTTP: each answer
// carries the expected code, and every code it carries is in pdp/reason's
// catalogue for the place it appears (decision reasons, HTTP error
// reasons).
func TestReasonsOnTheWireAreCatalogued(t *testing.T) {
	s := startNorthbank(t)
	pay := func(amount string) string { return forUser("alice", `,"amount":`+amount+`,"currency":"EUR"`) }
	for _, c := range []struct {
		name                               string
		app, subject, action, resource, cx string
		want                               []string
	}{
		{"no permit", "mobile-banking", user("mallory"), "view_statements", accAlice, `{"purpose":"account_servicing"}`, []string{reason.NoRelationship}},
		{"beyond the mandate", "mobile-banking", user("bob"), "make_payment", accAlice, pay("1500"), []string{reason.DelegationOutOfScope}},
		{"expired", "mobile-banking", user("oscar"), "view_statements", accAlice, forUser("alice", ""), []string{reason.DelegationExpired}},
		{"not accepted", "mobile-banking", user("peggy"), "view_statements", accAlice, forUser("alice", ""), []string{reason.DelegationNotAccepted}},
		{"no currency", "mobile-banking", user("bob"), "make_payment", accAlice, forUser("alice", `,"amount":10`), []string{reason.CurrencyMissing}},
		{"unknown action", "mobile-banking", user("alice"), "no_such_action", accAlice, `{}`, []string{reason.UnknownAction}},
		{"unknown type", "mobile-banking", `{"type":"robot","id":"r2"}`, "view_statements", accAlice, `{}`, []string{reason.UnknownEntityType}},
		{"invalid id", "mobile-banking", user("not an id"), "view_statements", accAlice, `{"purpose":"account_servicing"}`, []string{reason.InvalidID}},
		{"no purpose", "advisor-portal", user("gina"), "view_portfolio", accAlice, `{}`, []string{reason.PurposeNotAllowed}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := s.nbAsk(t, c.app, c.subject, c.action, c.resource, c.cx)
			if d.Decision || !slices.Equal(d.Context.Reasons, c.want) {
				t.Fatalf("got %v %v, want deny %v", d.Decision, d.Context.Reasons, c.want)
			}
			for _, code := range d.Context.Reasons {
				if !reason.Known(code, reason.Decision) {
					t.Errorf("decision reason %q is not in the catalogue", code)
				}
			}
		})
	}
	for _, c := range []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"someone else accepts", "/v1/delegations/poa-alice-oscar/accept", `{"actor":{"type":"user","id":"mallory"}}`, http.StatusForbidden, reason.Forbidden},
		{"sub-delegation beyond the parent", "/v1/delegations",
			`{"actor":{"type":"user","id":"dave"},"principal":{"type":"user","id":"carol"},"agent":{"type":"user","id":"uncle"},
			"basis":"sub_delegation","source":"self_declared","scope":["view_statements"],"parent":"guardian-carol-dave",
			"valid_from":"2026-01-01T00:00:00Z","valid_until":"2040-01-01T00:00:00Z"}`, http.StatusUnprocessableEntity, reason.ExceedsParent},
		{"a purpose the registry lacks", "/v1/consents/give",
			`{"subject":{"type":"user","id":"alice"},"purpose":"no_such_purpose","jurisdiction":"DE"}`, http.StatusUnprocessableEntity, reason.UnknownPurpose},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, data := s.do(t, http.MethodPost, c.path, c.body, demoKey("backoffice")...)
			var body struct {
				Error  string `json:"error"`
				Reason string `json:"reason"`
			}
			if err := json.Unmarshal(data, &body); err != nil {
				t.Fatal(err)
			}
			if code != c.status || body.Reason != c.want || strings.TrimSpace(body.Error) == "" {
				t.Fatalf("%d %s, want %d with reason %q", code, data, c.status, c.want)
			}
			if !reason.Known(body.Reason, reason.HTTPError) {
				t.Errorf("error reason %q is not in the catalogue", body.Reason)
			}
		})
	}
}
