package pdp_test

import (
	"context"
	"slices"
	"testing"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
)

// TestReplayUnderABundleWithoutTheRecordedTypes: replaying (or asking
// what-if of) a record under a bundle that no longer declares its action
// or its types answers what the engine would answer a new request —
// unknown_action, unknown_entity_type — even for a redacted record, whose
// request-level checks are skipped; Cedar is not asked (a policy with an
// unconstrained action would otherwise still permit it).
func TestReplayUnderABundleWithoutTheRecordedTypes(t *testing.T) {
	load := func(schema string) *policy.Bundle {
		t.Helper()
		b, err := policy.LoadFiles(map[string][]byte{
			"schema/s.cedarschema": []byte(schema),
			"policies/p.cedar":     []byte(`@id("any") permit (principal, action, resource);`),
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	old := load("entity User;\nentity Doc;\naction view, approve appliesTo { principal: [User], resource: [Doc] };\n")
	req := pdp.Request{Subject: pdp.Entity{Type: "user", ID: "u"}, Action: pdp.Action{Name: "approve"}, Resource: pdp.Entity{Type: "doc", ID: "d"}}
	rec, err := pdp.NewEngine(pdp.Components{Bundles: old}).Decide(context.Background(), req)
	if err != nil || !rec.Allowed {
		t.Fatalf("recorded: %v %v", rec.Allowed, err)
	}
	for _, tc := range []struct {
		name, schema, want string
	}{
		{"the action dropped", "entity User;\nentity Doc;\naction view appliesTo { principal: [User], resource: [Doc] };\n", pdp.ReasonUnknownAction},
		{"the resource type dropped", "entity User;\nentity File;\naction view, approve appliesTo { principal: [User], resource: [File] };\n", pdp.ReasonUnknownEntityType},
		{"the subject type dropped", "entity Person;\nentity Doc;\naction view, approve appliesTo { principal: [Person], resource: [Doc] };\n", pdp.ReasonUnknownEntityType},
	} {
		b := load(tc.schema)
		for _, opts := range []pdp.ReplayOptions{{}, {RequestRedacted: true}} {
			r := pdp.NewReplayer().Replay(b, req, rec, opts)
			if r.Outcome != pdp.Differs || r.Decision.Allowed || !slices.Equal(r.Decision.Reasons, []string{tc.want}) {
				t.Errorf("%s, %+v: %s allowed=%v %v, want differs, deny %s", tc.name, opts, r.Outcome, r.Decision.Allowed, r.Decision.Reasons, tc.want)
			}
		}
	}
}
