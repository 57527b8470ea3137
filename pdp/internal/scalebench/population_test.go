package scalebench

import (
	"slices"
	"testing"

	"github.com/ciampdp/pdp/pdp/relations"
)

var small = Params{Seed: 7, Users: 2_000, Branches: 10, StaffPerBranch: 3}

func collect(seq func(func(relations.Relationship) bool)) []string {
	var out []string
	for r := range seq {
		out = append(out, r.String())
	}
	return out
}

// TestPopulation: the same every time, split into ranges or not, no
// relationship twice (the bulk import refuses duplicates), the accounts of
// FirstAccounts owned by their user, and the shares near their targets.
func TestPopulation(t *testing.T) {
	first := small.FirstAccounts()
	whole := collect(small.Relationships(0, small.Users, 0))
	if again := collect(small.Relationships(0, small.Users, 0)); !slices.Equal(whole, again) {
		t.Fatal("two generations differ")
	}
	var parts []string
	for _, r := range [][2]int{{0, 700}, {700, 701}, {701, small.Users}} {
		parts = append(parts, collect(small.Relationships(r[0], r[1], int(first[r[0]])))...)
	}
	if !slices.Equal(whole, parts) {
		t.Fatal("generating in ranges differs from generating at once")
	}
	seen := make(map[string]bool, len(whole))
	for _, r := range whole {
		if seen[r] {
			t.Fatalf("%s twice", r)
		}
		seen[r] = true
	}
	for _, u := range []int{0, 1, 999, small.Users - 1} {
		for a := first[u]; a < first[u+1]; a++ {
			if r := "account:" + AccountID(int(a)) + "#owner@user:" + UserID(u); !seen[r] {
				t.Errorf("%s missing", r)
			}
		}
	}
	accounts := int(first[small.Users])
	perUser := float64(accounts) / float64(small.Users)
	perAccount := float64(len(whole)-small.Branches*small.StaffPerBranch) / float64(accounts)
	if perUser < 2.8 || perUser > 3.2 || perAccount < 3.2 || perAccount > 3.5 {
		t.Errorf("%.2f accounts per user (want about 3), %.2f relationships per account (want about 3.35)", perUser, perAccount)
	}
	if _, err := relations.ParseSchemaPermissions(Zed); err != nil {
		t.Fatal(err)
	}
}
