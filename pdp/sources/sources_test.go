package sources

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/relations"
)

const testSchema = `definition user {}

definition account {
	relation owner: user
	permission view = owner
}
`

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func open(t *testing.T, ctx context.Context, cfg relations.Config) *relations.Store {
	t.Helper()
	s, err := relations.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestCheckFactsHonoursConsistencyToken runs two PDP replicas on one
// SpiceDB (embedded in the first): a revoke on the first answers a token,
// and the second, asked with it, never reads the facts from before it,
// whatever its fact cache holds.
func TestCheckFactsHonoursConsistencyToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const key = "sources-test-key"
	addr := freeAddr(t)
	first := open(t, ctx, relations.Config{Engine: relations.EngineMemory, PresharedKey: key, Listen: addr})
	if _, err := first.WriteSchema(ctx, testSchema); err != nil {
		t.Fatal(err)
	}
	owner := relations.Relationship{Resource: relations.Object{Type: "account", ID: "acc-1"}, Relation: "owner",
		Subject: relations.Object{Type: "user", ID: "alice"}}
	if _, err := first.WriteRelationships(ctx, []relations.Update{{Op: relations.OpTouch, Rel: owner}}); err != nil {
		t.Fatal(err)
	}

	// The second replica, with its fact cache (and Watch stream) on.
	second := open(t, ctx, relations.Config{Engine: relations.EngineRemote, Endpoint: addr,
		PresharedKey: key, Insecure: true, CacheSize: 1000})
	facts := Facts{Store: second}
	check := []pdp.FactCheck{{ResourceType: "account", ResourceID: "acc-1", Permission: "view", SubjectType: "user", SubjectID: "alice"}}

	for round := range 20 {
		// Warm the second replica's cache with the relationship held.
		if round > 0 {
			if _, err := first.WriteRelationships(ctx, []relations.Update{{Op: relations.OpTouch, Rel: owner}}); err != nil {
				t.Fatal(err)
			}
		}
		waitFact(t, ctx, facts, check, true)

		// Revoke on the first replica; its token goes to the second.
		token, err := first.WriteRelationships(ctx, []relations.Update{{Op: relations.OpDelete, Rel: owner}})
		if err != nil || token == "" {
			t.Fatalf("revoke: %q, %v", token, err)
		}
		floor := second.Floor()
		got, rev, err := facts.CheckFacts(pdp.WithConsistencyToken(ctx, token), check)
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Has {
			t.Fatalf("round %d: the fact still holds when asked at least as fresh as the revoke's token", round)
		}
		if rev == floor || rev == "" {
			t.Errorf("round %d: answered at revision %q, the floor before the token (%q)", round, rev, floor)
		}
	}

	// A token already covered costs nothing: the floor stays.
	floor := second.Floor()
	if _, _, err := facts.CheckFacts(pdp.WithConsistencyToken(ctx, floor), check); err != nil {
		t.Fatal(err)
	}
	if second.Floor() != floor {
		t.Error("a covered token moved the floor")
	}

	// A store that cannot honour the token fails the check (the engine
	// then denies with facts_unavailable).
	_ = first.Close()
	if _, _, err := facts.CheckFacts(pdp.WithConsistencyToken(ctx, "GhUKEzE3NjA1NzY1NjQ3ODk0NzQ0MDA="), check); err == nil {
		t.Error("a check with a new token succeeded while SpiceDB is down")
	}
}

// waitFact waits until the check answers want without a token.
func waitFact(t *testing.T, ctx context.Context, f Facts, checks []pdp.FactCheck, want bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _, err := f.CheckFacts(ctx, checks)
		if err == nil && got[0].Has == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fact did not become %v: %v, %v", want, got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
