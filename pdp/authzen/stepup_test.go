package authzen

import "testing"

// TestDecodeStepUp: a malformed context.step_up (the failed step-up
// rules' report) is a 400 with a message, single or in a batch; a valid
// one decodes.
func TestDecodeStepUp(t *testing.T) {
	const head = `{"subject":{"type":"user","id":"mallory"},"action":{"name":"complete_step_up"},"resource":{"type":"user","id":"mallory"},"context":`
	for _, tc := range []struct{ name, ctx, msg string }{
		{"a string", `{"step_up":"failed"}`, `context.step_up: want {"outcome": "failed" | "succeeded"}, got a string`},
		{"no outcome", `{"step_up":{}}`, "outcome is required"},
		{"unknown outcome", `{"step_up":{"outcome":"denied"}}`, `outcome "denied" is neither`},
		{"unknown member", `{"step_up":{"outcome":"failed","factor":"otp"}}`, `unknown member "factor"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeEvaluation([]byte(head + tc.ctx + `}`))
			assertRequestError(t, err, tc.msg)
			_, err = DecodeEvaluations([]byte(`{"evaluations":[{},` + head + tc.ctx + `}]}`))
			assertRequestError(t, err, "evaluations[1]: context.step_up")
			assertRequestError(t, err, tc.msg)
		})
	}
	req, err := DecodeEvaluation([]byte(head + `{"step_up":{"outcome":"failed"}}}`))
	if err != nil || req.Context["step_up"] == nil {
		t.Fatalf("a valid report: %v %v", req, err)
	}
}
