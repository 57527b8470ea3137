package zedschema

import (
	"os"
	"testing"
)

func TestCaveatedNames(t *testing.T) {
	zed, err := os.ReadFile("../../examples/northbank/schema/northbank.zed")
	if err != nil {
		t.Fatal(err)
	}
	got, err := CaveatedNames(string(zed))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		def, name string
		want      bool
	}{
		{"account", "owner", false},
		{"user", "advisor", false},
		{"account", "view_portfolio", false},       // owner + owner->advisor
		{"delegation", "agent", true},              // user with delegation_window
		{"delegation", "principal", false},         // no caveat
		{"user", "delegate_view_statements", true}, // delegation#agent is caveated
		{"account", "delegate_make_payment", true}, // with amount_limit
		{"account", "view_statements", true},       // reaches delegates
		{"account", "make_payment", true},
	} {
		if got[tc.def][tc.name] != tc.want {
			t.Errorf("%s#%s caveated = %v, want %v", tc.def, tc.name, got[tc.def][tc.name], tc.want)
		}
	}
	// The test schema of this package: a caveat only on delegate.
	got, err = CaveatedNames(testSchema)
	if err != nil {
		t.Fatal(err)
	}
	if got["account"]["manage"] || !got["account"]["pay"] || !got["account"]["view"] || got["account"]["viewer"] {
		t.Errorf("test schema: %v", got["account"])
	}
}
