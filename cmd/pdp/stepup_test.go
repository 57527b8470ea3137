package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	alicePays = `{"subject":{"type":"user","id":"alice"},"action":{"name":"make_payment"},"resource":{"type":"account","id":"acc-alice"},` +
		`"context":{"purpose":"account_servicing","amount":250,"currency":"EUR"}}`
	aliceViews = `{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},` +
		`"context":{"purpose":"account_servicing"}}`
)

// stepUpReportBody is mobile-banking's report of alice's step-up outcome.
func stepUpReportBody(stepUp string) string {
	return `{"subject":{"type":"user","id":"alice"},"action":{"name":"complete_step_up"},"resource":{"type":"user","id":"alice"},` +
		`"context":{"purpose":"account_servicing","step_up":` + stepUp + `}}`
}

// TestFailedStepUpsThenPayment runs the Northbank row "failed step-ups,
// then a payment" over HTTP on the shipped defaults (trail on), through a
// sidecar beside mobile-banking: someone with alice's password fails her
// second factor three times; her payment then answers allow only with
// step_up_authentication (also from the sidecar, which had cached the
// plain allow), her statements are not held back, bob's payment for her
// neither; a success lifts it. The record says it in words and replays.
func TestFailedStepUpsThenPayment(t *testing.T) {
	s := startNorthbank(t)
	const key = "demo-key-mobile-banking"
	sc := startSidecar(t, s.URL, key, filepath.Join(t.TempDir(), "spool"), nil)
	ask := func(url, key, body string) sidecarAnswer {
		t.Helper()
		code, data, err := postJSON(url, "/access/v1/evaluation", key, body)
		var a sidecarAnswer
		if err != nil || code != http.StatusOK || json.Unmarshal(data, &a) != nil {
			t.Fatalf("evaluation: %d %s %v", code, data, err)
		}
		return a
	}
	want := func(a sidecarAnswer, allowed bool, reasons, obligations []string) {
		t.Helper()
		if reasons == nil {
			reasons = []string{}
		}
		if obligations == nil {
			obligations = []string{}
		}
		if a.Decision != allowed || !slices.Equal(a.Context.Reasons, reasons) || !slices.Equal(a.Context.Obligations, obligations) {
			t.Fatalf("got %v %v %v (%s), want %v %v %v", a.Decision, a.Context.Reasons, a.Context.Obligations, a.Context.Message, allowed, reasons, obligations)
		}
	}
	failed := stepUpReportBody(`{"outcome":"failed"}`)

	want(ask(sc, key, alicePays), true, nil, nil)
	if a := ask(sc, key, alicePays); a.Context.CachedFrom == "" {
		t.Fatalf("the second payment is not the sidecar's cached allow: %+v", a)
	}
	// A report is never answered from the sidecar's cache: each reaches
	// the PDP and is counted.
	var lastReport string
	for i := range 3 {
		began := time.Now()
		a := ask(sc, key, failed)
		if i == 2 {
			// The report that begins the hold is answered once the
			// sidecar acknowledged the change.
			t.Logf("the third failed step-up, through the sidecar, answered in %s", time.Since(began))
		}
		want(a, true, nil, nil)
		if a.Context.CachedFrom != "" {
			t.Fatalf("a report answered from the sidecar's cache: %+v", a)
		}
		lastReport = a.Context.DecisionID
	}
	a := ask(sc, key, alicePays)
	want(a, true, nil, []string{"step_up_authentication"})
	if a.Context.CachedFrom != "" {
		t.Fatalf("the sidecar served the allow it cached before the hold: %+v", a)
	}
	want(ask(s.URL, key, alicePays), true, nil, []string{"step_up_authentication"})
	want(ask(sc, key, aliceViews), true, nil, nil)
	want(ask(s.URL, key, bobPays), true, nil, nil)

	words, replay := s.explain(t, a.Context.DecisionID)
	for _, w := range []string{`allowed only with step_up_authentication (step_up_failed): User::"alice" failed 3 step-up authentications within 10m0s`, "failed step-up rule payment_after_failed_step_ups"} {
		if !strings.Contains(words, w) {
			t.Fatalf("the explanation lacks %q:\n%s", w, words)
		}
	}
	if replay != "reproduced" {
		t.Fatalf("replay: %s\n%s", replay, words)
	}
	if words, replay := s.explain(t, lastReport); !strings.Contains(words, `User::"alice" reported a failed step-up: 3 within 10m0s`) || replay != "reproduced" {
		t.Fatalf("the report's explanation (%s):\n%s", replay, words)
	}

	t.Run("malformed outcomes are a 400 with a message, at the PDP and at the sidecar", func(t *testing.T) {
		for _, url := range []string{s.URL, sc} {
			for body, msg := range map[string]string{
				stepUpReportBody(`{"outcome":"maybe"}`): `outcome \"maybe\" is neither`,
				stepUpReportBody(`"failed"`):            "context.step_up: want",
				stepUpReportBody(`{}`):                  "outcome is required",
			} {
				code, data, err := postJSON(url, "/access/v1/evaluation", key, body)
				if err != nil || code != http.StatusBadRequest || !strings.Contains(string(data), msg) {
					t.Fatalf("%s: %d %s %v, want 400 with %s", url, code, data, err, msg)
				}
			}
		}
	})
	t.Run("another application's reports are refused and not counted", func(t *testing.T) {
		// In Northbank only mobile-banking may use account_servicing, so
		// the purpose check refuses the budget app before the reporters
		// check would (that one: pdp.TestFailedStepUpsThenPayment).
		b := ask(s.URL, "demo-key-budget-app", stepUpReportBody(`{"outcome":"succeeded"}`))
		want(b, false, []string{"purpose_not_allowed"}, nil)
		want(ask(s.URL, key, alicePays), true, nil, []string{"step_up_authentication"})
	})
	t.Run("a successful step-up lifts the hold, in the sidecar too", func(t *testing.T) {
		want(ask(sc, key, stepUpReportBody(`{"outcome":"succeeded"}`)), true, nil, nil)
		want(ask(sc, key, alicePays), true, nil, nil)
		want(ask(s.URL, key, alicePays), true, nil, nil)
	})
}

// TestVelocityBlockReachesSidecar: the IP velocity rule's block reaches a
// sidecar's cache like the failed step-up hold (the change feed): an
// allow the sidecar cached for the IP before the block is not served
// after it.
func TestVelocityBlockReachesSidecar(t *testing.T) {
	s := startNorthbank(t)
	const key = "demo-key-mobile-banking"
	sc := startSidecar(t, s.URL, key, filepath.Join(t.TempDir(), "spool"), nil)
	const view = `{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},` +
		`"context":{"purpose":"account_servicing","ip":"203.0.113.9"}}`
	askSidecar(t, sc, key, view)
	if a := askSidecar(t, sc, key, view); !a.Decision || a.Context.CachedFrom == "" {
		t.Fatalf("not the cached allow: %+v", a)
	}
	for i := range 30 {
		body := `{"subject":{"type":"user","id":"stuffed-` + string(rune('a'+i)) + `"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},` +
			`"context":{"purpose":"account_servicing","ip":"203.0.113.9"}}`
		if code, data, err := postJSON(s.URL, "/access/v1/evaluation", key, body); err != nil || code != http.StatusOK || strings.Contains(string(data), `"decision":true`) {
			t.Fatalf("stuffing %d: %d %s %v", i, code, data, err)
		}
	}
	if a := askSidecar(t, sc, key, view); a.Decision || !slices.Equal(a.Context.Reasons, []string{"risk_velocity"}) {
		t.Fatalf("after the block the sidecar answered %+v", a)
	}
}
