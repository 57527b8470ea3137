package relations

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
