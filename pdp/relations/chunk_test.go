package relations

import (
	"context"
	"fmt"
	"testing"
)

// TestCheckBulkOverTheItemLimit: more checks than SpiceDB takes in one
// bulk call are asked in chunks, all read at one revision, answered in
// order.
func TestCheckBulkOverTheItemLimit(t *testing.T) {
	s := openMemory(t, Config{CacheSize: -1}).Store
	ctx := context.Background()
	if _, err := s.WriteRelationships(ctx, []Update{{Op: OpTouch, Rel: Relationship{
		Resource: Object{Type: "account", ID: "a-last"}, Relation: "owner", Subject: Object{Type: "user", ID: "u"}}}}); err != nil {
		t.Fatal(err)
	}
	n := MaxBulkItems + 5
	checks := make([]Check, n)
	for i := range checks {
		checks[i] = Check{Resource: Object{Type: "account", ID: fmt.Sprintf("a%d", i)}, Permission: "manage", Subject: Object{Type: "user", ID: "u"}}
	}
	checks[n-1].Resource.ID = "a-last"
	res, err := s.CheckBulk(ctx, checks)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != n || res.Revision == "" {
		t.Fatalf("%d answers at %q for %d checks", len(res.Items), res.Revision, n)
	}
	for i, r := range res.Items {
		if r.Check.Resource != checks[i].Resource || r.Has != (i == n-1) {
			t.Fatalf("answer %d: %+v", i, r)
		}
	}
}
