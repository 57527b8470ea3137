package signals

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestParseStepUpRules: the failed step-up rules of a registry are read
// as written, and every bad value is refused naming its key.
func TestParseStepUpRules(t *testing.T) {
	const good = `report: complete_step_up, reporters: [mobile-banking], count: 3, window: 10m, block: 30m, actions: [make_payment], effect: step_up_authentication, reason: step_up_failed`
	r, err := ParseRegistry([]byte("failed_step_ups: {pay: {" + good + "}}"))
	if err != nil {
		t.Fatal(err)
	}
	want := StepUpRule{Name: "pay", Report: "complete_step_up", Reporters: []string{"mobile-banking"}, Count: 3,
		Window: 10 * time.Minute, Block: 30 * time.Minute, Actions: []string{"make_payment"}, Effect: EffectStepUp, Reason: "step_up_failed"}
	if len(r.StepUps) != 1 || r.StepUps[0].Name != want.Name || r.StepUps[0].Count != 3 || r.StepUps[0].Window != want.Window ||
		r.StepUps[0].Block != want.Block || r.StepUps[0].Effect != want.Effect || !r.StepUps[0].Applies("make_payment") || r.StepUps[0].Applies("view_statements") {
		t.Fatalf("got %+v, want %+v", r.StepUps, want)
	}
	if got := r.StepUpReport("complete_step_up"); len(got) != 1 || got[0].Name != "pay" {
		t.Fatalf("StepUpReport: %+v", got)
	}
	if got := r.StepUpReport("make_payment"); len(got) != 0 {
		t.Fatalf("StepUpReport(make_payment): %+v", got)
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"no report action", `reporters: [a], count: 3, window: 10m, block: 30m, actions: [pay], effect: deny, reason: r`, "failed_step_ups.x.report"},
		{"no reporters", `report: rep, count: 3, window: 10m, block: 30m, actions: [pay], effect: deny, reason: r`, "failed_step_ups.x.reporters"},
		{"an empty reporter", `report: rep, reporters: [""], count: 3, window: 10m, block: 30m, actions: [pay], effect: deny, reason: r`, "failed_step_ups.x.reporters"},
		{"count zero", `report: rep, reporters: [a], count: 0, window: 10m, block: 30m, actions: [pay], effect: deny, reason: r`, "failed_step_ups.x.count"},
		{"no actions", `report: rep, reporters: [a], count: 3, window: 10m, block: 30m, effect: deny, reason: r`, "failed_step_ups.x.actions"},
		{"holds back its report", `report: rep, reporters: [a], count: 3, window: 10m, block: 30m, actions: [pay, rep], effect: deny, reason: r`, "failed_step_ups.x.actions"},
		{"unknown effect", `report: rep, reporters: [a], count: 3, window: 10m, block: 30m, actions: [pay], effect: reauthenticate, reason: r`, "failed_step_ups.x.effect"},
		{"no effect", `report: rep, reporters: [a], count: 3, window: 10m, block: 30m, actions: [pay], reason: r`, "failed_step_ups.x.effect"},
		{"bad reason", `report: rep, reporters: [a], count: 3, window: 10m, block: 30m, actions: [pay], effect: deny, reason: Bad-Code`, "failed_step_ups.x.reason"},
		{"bad window", `report: rep, reporters: [a], count: 3, window: soon, block: 30m, actions: [pay], effect: deny, reason: r`, "failed_step_ups.x.window"},
		{"negative block", `report: rep, reporters: [a], count: 3, window: 10m, block: -1m, actions: [pay], effect: deny, reason: r`, "failed_step_ups.x.block"},
		{"unknown key", `report: rep, reporters: [a], count: 3, window: 10m, block: 30m, actions: [pay], effect: deny, reason: r, threshold: 2`, "threshold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRegistry([]byte("failed_step_ups: {x: {" + tc.doc + "}}"))
			if !errors.Is(err, ErrInvalidRegistry) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an ErrInvalidRegistry naming %s", err, tc.want)
			}
		})
	}
}

// TestStepUpRulesOfOneReportShareReporters: a report is refused whole when
// one of its rules does not list the reporting application, so rules of
// one report action must list the same reporters (else a reporter listed
// by one rule only would count nothing, silently).
func TestStepUpRulesOfOneReportShareReporters(t *testing.T) {
	rule := func(reporters string) string {
		return `{report: rep, reporters: [` + reporters + `], count: 3, window: 10m, block: 30m, actions: [pay], effect: deny, reason: r}`
	}
	for _, tc := range []struct {
		name, a, b string
		ok         bool
	}{
		{"same reporters", "a, b", "b, a", true},
		{"one more reporter", "a", "a, b", false},
		{"other reporters", "a", "b", false},
	} {
		_, err := ParseRegistry([]byte("failed_step_ups: {x: " + rule(tc.a) + ", y: " + rule(tc.b) + "}"))
		if tc.ok != (err == nil) || (err != nil && (!errors.Is(err, ErrInvalidRegistry) || !strings.Contains(err.Error(), "failed_step_ups.y.reporters"))) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
