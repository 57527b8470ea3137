package pdp

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestCaveatContextSize: the engine's count is proto.Size of the Struct
// SpiceDB receives.
func TestCaveatContextSize(t *testing.T) {
	for _, ctx := range []map[string]any{
		{},
		{"now": "2026-12-07T12:00:00Z", "amount": 250.0, "ok": true, "off": false, "zero": 0.0},
		{"note": strings.Repeat("x", 127), "k": strings.Repeat("y", 128)},
		{"note": strings.Repeat("x", 5000), strings.Repeat("k", 300): ""},
		{"": ""},
	} {
		s, err := structpb.NewStruct(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := caveatContextSize(ctx), proto.Size(s); got != want {
			t.Errorf("%d keys: got %d, proto.Size %d", len(ctx), got, want)
		}
	}
}
