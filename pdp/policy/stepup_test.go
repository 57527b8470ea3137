package policy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/signals"
)

// TestStepUpRuleActionsInSchema: a failed step-up rule naming an action
// the schema lacks (its report action or one it holds back) fails the
// bundle's load, naming the file and the action; the rule with the
// schema's actions loads and is part of the version.
func TestStepUpRuleActionsInSchema(t *testing.T) {
	const schema = `entity User; entity Account;
action pay appliesTo { principal: [User], resource: [Account] };
action complete_step_up appliesTo { principal: [User], resource: [User] };`
	rule := func(report, action string) []byte {
		return []byte(`failed_step_ups: {r: {report: ` + report + `, reporters: [app], count: 3, window: 10m, block: 30m, actions: [` + action + `], effect: deny, reason: step_up_failed}}`)
	}
	load := func(reg []byte) (*policy.Bundle, error) {
		return policy.LoadFiles(map[string][]byte{"schema/s.cedarschema": []byte(schema), "policies/p.cedar": nil, "schema/signals.yaml": reg})
	}
	b, err := load(rule("complete_step_up", "pay"))
	if err != nil || len(b.Signals().StepUps) != 1 {
		t.Fatalf("a valid rule: %v", err)
	}
	for _, tc := range []struct{ report, action, want string }{
		{"complete_step_up", "make_paymnet", `action "make_paymnet" is not in the schema`},
		{"report_step_up", "pay", `action "report_step_up" is not in the schema`},
	} {
		_, err := load(rule(tc.report, tc.action))
		var les policy.LoadErrors
		if !errors.As(err, &les) || !errors.Is(les[0].Err, signals.ErrInvalidRegistry) || !strings.Contains(err.Error(), "schema/signals.yaml") || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("got %v, want a load error naming %s", err, tc.want)
		}
	}
}
