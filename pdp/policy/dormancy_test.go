package policy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ciampdp/pdp/pdp/policy"
)

// TestBundleDormancyRules: schema/dormancy.yaml is part of the bundle and
// of its version; a broken one fails the load, naming the file.
func TestBundleDormancyRules(t *testing.T) {
	files := map[string][]byte{
		"schema/s.cedarschema": []byte("entity User; action view appliesTo { principal: [User], resource: [User] };"),
		"policies/p.cedar":     []byte(`@id("p") permit (principal, action, resource);`),
	}
	bare, err := policy.LoadFiles(files)
	if err != nil || bare.Dormancy() != nil {
		t.Fatalf("%v %v", err, bare.Dormancy())
	}
	files["schema/dormancy.yaml"] = []byte("identities:\n  - {id: idle, after: 365d, revalidate: [view]}\n")
	b, err := policy.LoadFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	if r := b.Dormancy(); r == nil || len(r.Identities) != 1 || r.Identities[0].ID != "idle" {
		t.Fatalf("rules %+v", r)
	}
	if b.Version().Hash == bare.Version().Hash {
		t.Fatal("the rules are not part of the version")
	}
	files["schema/dormancy.yaml"] = []byte("identities:\n  - {id: idle, after: never, revalidate: [view]}\n")
	_, err = policy.LoadFiles(files)
	var le policy.LoadErrors
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "schema/dormancy.yaml") || !strings.Contains(err.Error(), "after") {
		t.Fatalf("broken rules: %v", err)
	}
	// In the policies folder it is not a rules file.
	delete(files, "schema/dormancy.yaml")
	files["policies/dormancy.yaml"] = []byte("not: rules")
	if b, err := policy.LoadFiles(files); err != nil || b.Dormancy() != nil {
		t.Fatalf("%v", err)
	}
}
