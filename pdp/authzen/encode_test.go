package authzen

import (
	"encoding/json"
	"testing"

	"github.com/ciampdp/pdp/pdp"
)

func TestAppendJSONMatchesMarshal(t *testing.T) {
	full := pdp.Decision{ID: "01a2-x", Allowed: false, Policies: []string{"p1", "forbid-<x>"},
		Reasons: []string{"risk_high"}, Obligations: []string{"step_up_authentication"},
		Message: "context.amount must be \"a decimal\" — got\ta string ü", Errors: []pdp.EvalError{{PolicyID: "p&q", Message: "overflow\n"}}}
	full.PolicyVersion.Hash = "sha256:abc"
	acting := pdp.Decision{ID: "d2", Allowed: true, Policies: []string{"delegate-pays"},
		Delegation: &pdp.DelegationProof{Status: pdp.DelegationActive, Chain: []string{"sub-acme-frank", "rep-acme-erin"}}}
	refused := pdp.Decision{ID: "d3", Reasons: []string{"delegation_expired"},
		Delegation: &pdp.DelegationProof{Status: pdp.DelegationExpired}}
	cases := map[string]any{
		"allow, empty arrays":  NewDecisionResponse(pdp.Decision{ID: "id", Allowed: true}, false),
		"compact":              NewDecisionResponse(pdp.Decision{Allowed: true}, true),
		"everything, escaping": NewDecisionResponse(full, false),
		"nil arrays":           DecisionResponse{Context: &DecisionContext{}},
		"acting for someone":   NewDecisionResponse(acting, false),
		"a refused delegation": NewDecisionResponse(refused, false),
		"batch":                NewEvaluationsResponse([]pdp.Decision{full, {Allowed: true}}, false),
		"batch compact":        NewEvaluationsResponse([]pdp.Decision{full, {Allowed: true}}, true),
		"empty batch":          NewEvaluationsResponse(nil, false),
		"nil batch":            EvaluationsResponse{},
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			switch r := v.(type) {
			case DecisionResponse:
				got = r.AppendJSON(nil)
			case EvaluationsResponse:
				got = r.AppendJSON(nil)
			}
			if string(got) != string(want) {
				t.Fatalf("AppendJSON:\n%s\njson.Marshal:\n%s", got, want)
			}
		})
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\"", "back\\slash", "ctl\x01", "<html>&", "ümlaut", "\xff\xfe", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}
