package pdp

import (
	"regexp"
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

// TestValidObjectID follows SpiceDB's object id grammar.
func TestValidObjectID(t *testing.T) {
	spicedb := regexp.MustCompile(`^[a-zA-Z0-9/_|\-=+]+$`)
	for _, id := range []string{"alice", "acc-alice", "CiRmZDE2MTRkMy1jMzlh+/=", "a|b_c", "", "*", "alice smith",
		"alice@bank", "al:ice", "é", "a\x00", strings.Repeat("a", 1024), strings.Repeat("a", 1025)} {
		want := id != "*" && len(id) <= 1024 && spicedb.MatchString(id)
		if got := validObjectID(id); got != want {
			t.Errorf("validObjectID(%q) = %v, want %v", id, got, want)
		}
	}
}
