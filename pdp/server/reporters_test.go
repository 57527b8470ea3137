package server

import (
	"slices"
	"testing"

	"github.com/ciampdp/pdp/pdp/policy"
)

// TestUnknownReporters: a failed step-up rule's reporter that no API key
// names is reported (a misspelt one silently disables its rule).
func TestUnknownReporters(t *testing.T) {
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema": []byte("entity User;\naction pay, complete_step_up appliesTo { principal: [User], resource: [User] };\n"),
		"policies/p.cedar":     []byte(`@id("p") permit (principal, action, resource);`),
		"schema/signals.yaml": []byte(`version: "t"
failed_step_ups:
  hold: {report: complete_step_up, reporters: [mobile-banking, mobil-banking], count: 3, window: 10m, block: 30m, actions: [pay], effect: deny, reason: step_up_failed}
`),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		keys []APIKey
		want []string
	}{
		{"one misspelt", []APIKey{{Application: "mobile-banking"}, {Application: "budget-app"}}, []string{"mobil-banking"}},
		{"authentication off: none counts", nil, []string{"mobile-banking", "mobil-banking"}},
		{"both known", []APIKey{{Application: "mobile-banking"}, {Application: "mobil-banking"}}, nil},
	} {
		if got := unknownReporters(b, tc.keys); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
