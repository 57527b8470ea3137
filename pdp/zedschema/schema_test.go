package zedschema

import (
	"maps"
	"slices"
	"testing"
)

func TestParseSchemaPermissions(t *testing.T) {
	names, err := ParseSchemaPermissions(testSchema)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(names)); !slices.Equal(got, []string{"account", "group", "user"}) {
		t.Errorf("definitions %v (caveats must not appear)", got)
	}
	want := map[string]NameKind{
		"owner": KindRelation, "delegate": KindRelation, "viewer": KindRelation,
		"manage": KindPermission, "pay": KindPermission, "view": KindPermission,
	}
	if !maps.Equal(names["account"], want) {
		t.Errorf("account: %v, want %v", names["account"], want)
	}
	if len(names["user"]) != 0 {
		t.Errorf("user: %v", names["user"])
	}
	if _, ok := names["account"]["bogus"]; ok {
		t.Error("unknown name reported")
	}
	for _, bad := range []string{
		"definition x { relation r: nosuchtype }",
		"definition x { permission p = missing }",
		"definition x {",
	} {
		if _, err := ParseSchemaPermissions(bad); err == nil {
			t.Errorf("ParseSchemaPermissions(%q) succeeded", bad)
		}
	}
}

// testSchema has a caveat only on account#delegate, a subject relation
// (group#member) and permissions built on both.
const testSchema = `use expiration

definition user {}

caveat within_limit(amount int, limit int) {
	amount <= limit
}

caveat valid(now timestamp, valid_from timestamp, valid_until timestamp) {
	now >= valid_from && now < valid_until
}

definition group {
	relation member: user
}

definition account {
	relation owner: user
	relation delegate: user with within_limit | user with valid | user with expiration
	relation viewer: user | group#member
	permission manage = owner
	permission pay = owner + delegate
	permission view = viewer + pay
}
`
