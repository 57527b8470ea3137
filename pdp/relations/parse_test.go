package relations

import (
	"strings"
	"testing"
)

func TestParseRelationship(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		caveat  map[string]any
		expires bool
		bad     bool
	}{
		{in: "account:acc-alice#owner@user:alice", want: "account:acc-alice#owner@user:alice"},
		{in: "  group:staff#member@group:admins#member ", want: "group:staff#member@group:admins#member"},
		{in: `account:acc-alice#payment_agent@user:bob[within_mandate:{"max_amount":1000}]`, want: "account:acc-alice#payment_agent@user:bob[within_mandate]",
			caveat: map[string]any{"max_amount": float64(1000)}},
		{in: "account:a#viewer@user:x[expiration:2030-12-31T00:00:00Z]", want: "account:a#viewer@user:x", expires: true},
		{in: "account:acc-alice#owner", bad: true},
		{in: "not a relationship", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseRelationship(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("parsed %q as %v", tc.in, r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.String() != tc.want {
				t.Fatalf("got %s, want %s", r, tc.want)
			}
			for k, v := range tc.caveat {
				if r.CaveatContext[k] != v {
					t.Fatalf("caveat context %v, want %v", r.CaveatContext, tc.caveat)
				}
			}
			if (r.Expires != nil) != tc.expires {
				t.Fatalf("expires = %v", r.Expires)
			}
		})
	}
}

func TestReadRelationshipsText(t *testing.T) {
	rels, err := ReadRelationshipsText(strings.NewReader("# seed\n\naccount:a#owner@user:alice\n// more\naccount:b#owner@user:bob\n"))
	if err != nil || len(rels) != 2 {
		t.Fatalf("got %v, %v", rels, err)
	}
	if _, err := ReadRelationshipsText(strings.NewReader("account:a#owner@user:alice\nbroken\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("error %v does not name line 2", err)
	}
}
