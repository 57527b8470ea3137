package relations

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// lookupSchema adds to testSchema a definition with a wildcard relation.
const lookupSchema = testSchema + `
definition document {
	relation reader: user | user:*
	permission read = reader
}
`

func document(id string) Object { return Object{Type: "document", ID: id} }

// lookupGraph writes, on top of testSchema plus a wildcard definition:
// alice owns a1 and a2 and is a delegate of a3 within a limit of 100 (a
// caveat); dave owns a3; carol views a5 through group g1; anyone reads d1
// (a wildcard), erin reads it by name.
func lookupGraph(t *testing.T, s *Store) {
	t.Helper()
	if _, err := s.WriteSchema(context.Background(), lookupSchema); err != nil {
		t.Fatalf("WriteSchema: %v", err)
	}
	g1 := Object{Type: "group", ID: "g1"}
	mustWrite(t, s, touch(
		rel(account("a1"), "owner", user("alice")),
		rel(account("a2"), "owner", user("alice")),
		Relationship{Resource: account("a3"), Relation: "delegate", Subject: user("alice"),
			Caveat: "within_limit", CaveatContext: map[string]any{"limit": 100}},
		rel(account("a3"), "owner", user("dave")),
		rel(g1, "member", user("carol")),
		Relationship{Resource: account("a5"), Relation: "viewer", Subject: g1, SubjectRelation: "member"},
		rel(document("d1"), "reader", user("*")),
		rel(document("d1"), "reader", user("erin")),
	))
}

func TestLookup(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		s := m.open(t, Config{}).Store
		lookupGraph(t, s)
		ctx := context.Background()
		resources := func(typ, perm string, sub Object, caveats map[string]any) []string {
			t.Helper()
			ids, rev, err := s.LookupResources(ctx, typ, perm, sub, caveats, 0)
			if err != nil {
				t.Fatalf("LookupResources(%s#%s@%s): %v", typ, perm, sub, err)
			}
			if rev == "" {
				t.Fatalf("LookupResources(%s#%s@%s): no revision", typ, perm, sub)
			}
			return ids
		}
		subjects := func(res Object, perm, typ string, caveats map[string]any) []string {
			t.Helper()
			ids, rev, err := s.LookupSubjects(ctx, res, perm, typ, caveats, 0)
			if err != nil {
				t.Fatalf("LookupSubjects(%s#%s@%s): %v", res, perm, typ, err)
			}
			if rev == "" {
				t.Fatalf("LookupSubjects(%s#%s@%s): no revision", res, perm, typ)
			}
			return ids
		}
		tests := []struct {
			name      string
			got, want []string
		}{
			{"owned, sorted; the caveated delegation is left out without its context",
				resources("account", "pay", user("alice"), nil), []string{"a1", "a2"}},
			{"the caveat holds with the context",
				resources("account", "pay", user("alice"), map[string]any{"amount": 50}), []string{"a1", "a2", "a3"}},
			{"the caveat does not hold",
				resources("account", "pay", user("alice"), map[string]any{"amount": 500}), []string{"a1", "a2"}},
			{"through a group", resources("account", "view", user("carol"), nil), []string{"a5"}},
			{"a relation, not only a permission", resources("account", "owner", user("dave"), nil), []string{"a3"}},
			{"a wildcard grants anyone", resources("document", "read", user("zoe"), nil), []string{"d1"}},
			{"nothing", resources("account", "pay", user("nobody"), nil), []string{}},
			{"subjects of a permission", subjects(account("a1"), "pay", "user", nil), []string{"alice"}},
			{"a conditional subject is left out", subjects(account("a3"), "pay", "user", nil), []string{"dave"}},
			{"a conditional subject whose caveat holds", subjects(account("a3"), "pay", "user", map[string]any{"amount": 50}), []string{"alice", "dave"}},
			{"through a group's members", subjects(account("a5"), "view", "user", nil), []string{"carol"}},
			{"the wildcard subject is left out", subjects(document("d1"), "read", "user", nil), []string{"erin"}},
			{"an unknown object has no subjects", subjects(account("nope"), "pay", "user", nil), []string{}},
		}
		for _, tc := range tests {
			if !slices.Equal(tc.got, tc.want) {
				t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
			}
		}
	})
}

// TestLookupReadsItsWrites: a lookup right after a write or a delete
// through the store sees it, as a check does.
func TestLookupReadsItsWrites(t *testing.T) {
	s := openMemory(t, Config{}).Store
	ctx := context.Background()
	for round := range 3 {
		token := mustWrite(t, s, touch(rel(account("rw"), "owner", user("frank"))))
		ids, rev, err := s.LookupResources(ctx, "account", "manage", user("frank"), nil, 0)
		if err != nil || !slices.Equal(ids, []string{"rw"}) || rev == "" {
			t.Fatalf("round %d: after write: %q at %q, %v", round, ids, rev, err)
		}
		subs, _, err := s.LookupSubjects(ctx, account("rw"), "manage", "user", nil, 0)
		if err != nil || !slices.Equal(subs, []string{"frank"}) {
			t.Fatalf("round %d: subjects after write: %q, %v", round, subs, err)
		}
		if _, err := s.WriteRelationships(ctx, []Update{{Op: OpDelete, Rel: rel(account("rw"), "owner", user("frank"))}}); err != nil {
			t.Fatal(err)
		}
		ids, rev, err = s.LookupResources(ctx, "account", "manage", user("frank"), nil, 0)
		if err != nil || len(ids) != 0 {
			t.Fatalf("round %d: after delete: %q, %v", round, ids, err)
		}
		if rev == "" || rev == token {
			t.Fatalf("round %d: after delete: revision %q (the write's was %q)", round, rev, token)
		}
	}
}

func TestLookupLimit(t *testing.T) {
	s := openMemory(t, Config{}).Store
	ctx := context.Background()
	var rels []Relationship
	all := map[string]bool{}
	for _, id := range []string{"l1", "l2", "l3", "l4", "l5"} {
		rels = append(rels, rel(account(id), "owner", user("gina")), rel(account("shared"), "owner", user("u-"+id)))
		all[id] = true
	}
	mustWrite(t, s, touch(rels...))
	for _, limit := range []int{1, 3, 5, 9} {
		ids, _, err := s.LookupResources(ctx, "account", "manage", user("gina"), nil, limit)
		if err != nil {
			t.Fatal(err)
		}
		want := min(limit, 5)
		if len(ids) != want || !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != want {
			t.Fatalf("limit %d: got %q, want %d sorted distinct ids", limit, ids, want)
		}
		for _, id := range ids {
			if !all[id] {
				t.Fatalf("limit %d: unexpected id %q", limit, id)
			}
		}
		subs, _, err := s.LookupSubjects(ctx, account("shared"), "manage", "user", nil, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(subs) != want || !slices.IsSorted(subs) {
			t.Fatalf("limit %d: subjects %q, want %d sorted", limit, subs, want)
		}
	}
}

func TestLookupErrors(t *testing.T) {
	s := openMemory(t, Config{}).Store
	ctx := context.Background()
	if _, _, err := s.LookupResources(ctx, "no_such_type", "pay", user("alice"), nil, 0); err == nil ||
		!strings.Contains(err.Error(), "relations: lookup resources no_such_type#pay@user:alice") {
		t.Errorf("unknown resource type: %v", err)
	}
	if _, _, err := s.LookupSubjects(ctx, account("a1"), "no_such_permission", "user", nil, 0); err == nil ||
		!strings.Contains(err.Error(), "relations: lookup subjects account:a1#no_such_permission@user") {
		t.Errorf("unknown permission: %v", err)
	}
	if _, _, err := s.LookupResources(ctx, "account", "pay", user("alice"), map[string]any{"bad": struct{}{}}, 0); err == nil {
		t.Error("a caveat context that cannot be encoded: no error")
	}
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.LookupResources(ctx, "account", "pay", user("alice"), nil, 0); status.Code(err) != codes.Canceled {
		t.Errorf("cancelled context: %v, want code Canceled", err)
	}
	_ = s.Close()
	if _, _, err := s.LookupSubjects(context.Background(), account("a1"), "pay", "user", nil, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("closed store: %v, want ErrClosed", err)
	}
}
