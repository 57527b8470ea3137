package policytest_test

import (
	"encoding/json"
	"maps"
	"os"
	"slices"
	"testing"
)

// TestDocumentedSchema keeps docs/policy-test.schema.json in step with the
// decoder: it must be JSON, and list exactly the fields the decoder knows.
func TestDocumentedSchema(t *testing.T) {
	data, err := os.ReadFile("../../docs/policy-test.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	type object struct {
		Properties           map[string]json.RawMessage `json:"properties"`
		Required             []string                   `json:"required"`
		AdditionalProperties *bool                      `json:"additionalProperties"`
	}
	var doc struct {
		Schema string `json:"$schema"`
		object
		Defs map[string]object `json:"$defs"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("the schema is not JSON: %v", err)
	}
	if doc.Schema != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %q", doc.Schema)
	}
	check := func(name string, o object, fields, required []string) {
		t.Helper()
		if got := slices.Sorted(maps.Keys(o.Properties)); !slices.Equal(got, fields) {
			t.Errorf("%s: documented fields %v, decoder knows %v", name, got, fields)
		}
		if got := slices.Sorted(slices.Values(o.Required)); !slices.Equal(got, required) {
			t.Errorf("%s: documented required %v, decoder requires %v", name, got, required)
		}
		if o.AdditionalProperties == nil || *o.AdditionalProperties {
			t.Errorf("%s: the decoder rejects unknown fields; the schema must too", name)
		}
	}
	check("suite", doc.object, []string{"application", "batches", "cases", "consents", "delegations", "name", "now", "relationships", "signals"}, nil)
	check("case", doc.Defs["case"], []string{"expect", "name", "request"}, []string{"expect", "name", "request"})
	check("expect", doc.Defs["expect"], []string{"decision", "obligations", "policies", "reasons"}, []string{"decision"})
	check("batch", doc.Defs["batch"], []string{"expect", "name", "request"}, []string{"expect", "name", "request"})
}
