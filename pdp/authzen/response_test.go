package authzen

import (
	"encoding/json"
	"testing"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
)

func TestResponseJSON(t *testing.T) {
	full := pdp.Decision{
		ID:            "d-1",
		Allowed:       false,
		Policies:      []string{"p1"},
		Reasons:       []string{pdp.ReasonForbidden},
		Obligations:   []string{"step_up_authentication"},
		Errors:        []pdp.EvalError{{PolicyID: "p2", Message: "boom"}},
		PolicyVersion: policy.Version{Hash: "abc", Commit: "c0ffee"},
		Message:       "why",
	}
	tests := []struct {
		name string
		v    any
		want string
	}{
		{
			name: "allow with nil slices gives empty arrays",
			v:    NewDecisionResponse(pdp.Decision{ID: "d-0", Allowed: true, PolicyVersion: policy.Version{Hash: "abc"}}, false),
			want: `{"decision":true,"context":{"decision_id":"d-0","policy_version":"abc","policies":[],"reasons":[],"obligations":[]}}`,
		},
		{
			name: "deny with everything",
			v:    NewDecisionResponse(full, false),
			want: `{"decision":false,"context":{"decision_id":"d-1","policy_version":"abc","policies":["p1"],"reasons":["forbidden"],"obligations":["step_up_authentication"],"message":"why","errors":[{"policy":"p2","message":"boom"}]}}`,
		},
		{
			name: "compact",
			v:    NewDecisionResponse(full, true),
			want: `{"decision":false}`,
		},
		{
			name: "compact batch compares string for string",
			v:    NewEvaluationsResponse([]pdp.Decision{{Allowed: false}, {Allowed: true}}, true),
			want: `{"evaluations":[{"decision":false},{"decision":true}]}`,
		},
		{
			name: "empty batch is an empty array",
			v:    NewEvaluationsResponse(nil, false),
			want: `{"evaluations":[]}`,
		},
		{
			name: "metadata without capabilities",
			v:    NewMetadata("https://pdp.example.com/tenant1/"),
			want: `{"policy_decision_point":"https://pdp.example.com/tenant1","access_evaluation_endpoint":"https://pdp.example.com/tenant1/access/v1/evaluation","access_evaluations_endpoint":"https://pdp.example.com/tenant1/access/v1/evaluations"}`,
		},
		{
			name: "metadata with capabilities",
			v:    NewMetadata("https://pdp.example.com", "urn:example:cap"),
			want: `{"policy_decision_point":"https://pdp.example.com","access_evaluation_endpoint":"https://pdp.example.com/access/v1/evaluation","access_evaluations_endpoint":"https://pdp.example.com/access/v1/evaluations","capabilities":["urn:example:cap"]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
