package pdp_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/ciampdp/pdp/pdp"
)

// FuzzStepUpOutcome: whatever the context, StepUpOutcome answers "",
// failed or succeeded, or an error wrapping ErrStepUp, and never panics.
func FuzzStepUpOutcome(f *testing.F) {
	for _, s := range []string{`{}`, `{"step_up":{"outcome":"failed"}}`, `{"step_up":{"outcome":"succeeded"}}`,
		`{"step_up":null}`, `{"step_up":{"outcome":3}}`, `{"step_up":{"outcome":"failed","x":1}}`, `{"step_up":[]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ctx map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if dec.Decode(&ctx) != nil {
			return
		}
		got, err := pdp.StepUpOutcome(ctx)
		switch {
		case err != nil && (!errors.Is(err, pdp.ErrStepUp) || got != ""):
			t.Fatalf("got %q, %v", got, err)
		case err == nil && got != "" && got != pdp.StepUpFailed && got != pdp.StepUpSucceeded:
			t.Fatalf("outcome %q", got)
		case err == nil && got == "" && ctx["step_up"] != nil:
			t.Fatalf("context.step_up %v read as absent", ctx["step_up"])
		}
	})
}
