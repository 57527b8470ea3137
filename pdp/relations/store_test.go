package relations

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSchemaWriteRead(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		s := m.open(t, Config{}).Store
		text, err := s.ReadSchema(context.Background())
		if err != nil {
			t.Fatalf("ReadSchema: %v", err)
		}
		names, err := ParseSchemaPermissions(text)
		if err != nil {
			t.Fatalf("ParseSchemaPermissions(read schema): %v", err)
		}
		if names["account"]["pay"] != KindPermission || names["account"]["delegate"] != KindRelation {
			t.Errorf("account names = %v", names["account"])
		}
		if !strings.Contains(text, "caveat within_limit") {
			t.Errorf("schema read back lacks the caveat:\n%s", text)
		}
	})
}

func TestReadSchemaEmpty(t *testing.T) {
	s := openT(t, Config{})
	if _, err := s.ReadSchema(context.Background()); !errors.Is(err, ErrNoSchema) {
		t.Fatalf("ReadSchema on an empty store = %v, want ErrNoSchema", err)
	}
}

// TestReadYourWrites writes and deletes in rounds; each check right after a
// write must see it (HAS) and right after a delete must not (NO), with the
// cache on (the default) and off.
func TestReadYourWrites(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		for _, cacheSize := range []int{0, -1} {
			t.Run(fmt.Sprintf("cache=%v", cacheSize == 0), func(t *testing.T) {
				s := m.open(t, Config{CacheSize: cacheSize}).Store
				ctx := context.Background()
				alice, acc := user("alice"), account("a1")
				pay := Check{Resource: acc, Permission: "pay", Subject: alice}
				view := Check{Resource: acc, Permission: "view", Subject: alice}
				for round := range 5 {
					token := mustWrite(t, s, touch(rel(acc, "owner", alice)))
					if s.Floor() != token {
						t.Fatalf("round %d: floor is not the write token", round)
					}
					for range 2 { // the second answer may come from the cache
						res := mustCheck(t, s, pay, view)
						if !res.Items[0].Has || !res.Items[1].Has {
							t.Fatalf("round %d: after write: %s %s, want HAS HAS", round, outcome(res.Items[0]), outcome(res.Items[1]))
						}
						if res.Revision == "" {
							t.Fatalf("round %d: no revision", round)
						}
					}
					dtoken, err := s.WriteRelationships(ctx, []Update{{Op: OpDelete, Rel: rel(acc, "owner", alice)}})
					if err != nil {
						t.Fatal(err)
					}
					if dtoken == token || s.Floor() != dtoken {
						t.Fatalf("round %d: delete token %q, floor %q", round, dtoken, s.Floor())
					}
					for range 2 {
						res := mustCheck(t, s, pay, view)
						if res.Items[0].Has || res.Items[1].Has {
							t.Fatalf("round %d: after delete: %s %s, want NO NO", round, outcome(res.Items[0]), outcome(res.Items[1]))
						}
					}
				}
			})
		}
	})
}

// TestReadYourWritesConcurrent: writers in parallel (so floor moves
// overlap) each see their own write and delete at once, through the cache.
func TestReadYourWritesConcurrent(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		s := m.open(t, Config{}).Store
		ctx := context.Background()
		const writers, rounds = 6, 15
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				u := user(fmt.Sprintf("w%d", w))
				for r := range rounds {
					acc := account(fmt.Sprintf("c%d-%d", w, r%3))
					check := []Check{{Resource: acc, Permission: "manage", Subject: u}}
					if _, err := s.WriteRelationships(ctx, touch(rel(acc, "owner", u))); err != nil {
						errs <- err
						return
					}
					if res, err := s.CheckBulk(ctx, check); err != nil || !res.Items[0].Has {
						errs <- fmt.Errorf("writer %d round %d: after write: %v %v", w, r, outcome(res.Items[0]), err)
						return
					}
					if _, err := s.WriteRelationships(ctx, []Update{{Op: OpDelete, Rel: rel(acc, "owner", u)}}); err != nil {
						errs <- err
						return
					}
					if res, err := s.CheckBulk(ctx, check); err != nil || res.Items[0].Has {
						errs <- fmt.Errorf("writer %d round %d: after delete: %v %v", w, r, outcome(res.Items[0]), err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func TestCaveats(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		s := m.open(t, Config{}).Store
		acc := account("a1")
		from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		until := from.AddDate(0, 1, 0)
		mustWrite(t, s, touch(
			Relationship{Resource: acc, Relation: "delegate", Subject: user("lim"),
				Caveat: "within_limit", CaveatContext: map[string]any{"limit": 100}},
			Relationship{Resource: acc, Relation: "delegate", Subject: user("win"),
				Caveat: "valid", CaveatContext: map[string]any{"valid_from": from, "valid_until": until}},
		))
		pay := func(who string, ctx map[string]any) Check {
			return Check{Resource: acc, Permission: "pay", Subject: user(who), Context: ctx}
		}
		tests := []struct {
			name  string
			check Check
			want  string
		}{
			{"limit within", pay("lim", map[string]any{"amount": 50}), "HAS"},
			{"limit at", pay("lim", map[string]any{"amount": 100}), "HAS"},
			{"limit above", pay("lim", map[string]any{"amount": 500}), "NO"},
			{"limit no amount", pay("lim", nil), "CONDITIONAL[amount]"},
			{"written limit wins", pay("lim", map[string]any{"amount": 500, "limit": 1000}), "NO"},
			{"window inside", pay("win", map[string]any{"now": from.Add(time.Hour)}), "HAS"},
			{"window as string", pay("win", map[string]any{"now": "2026-01-15T00:00:00Z"}), "HAS"},
			{"window before", pay("win", map[string]any{"now": from.Add(-time.Second)}), "NO"},
			{"window end excluded", pay("win", map[string]any{"now": until}), "NO"},
			{"window no now", pay("win", nil), "CONDITIONAL[now]"},
			{"no relationship", pay("nobody", map[string]any{"amount": 1}), "NO"},
		}
		// Each alone, twice (the second may be a cache hit) …
		for _, tt := range tests {
			for i := range 2 {
				res := mustCheck(t, s, tt.check)
				if got := outcome(res.Items[0]); got != tt.want {
					t.Errorf("%s (try %d): %s, want %s", tt.name, i, got, tt.want)
				}
			}
		}
		// … and all in one call, in order, from one revision.
		checks := make([]Check, len(tests))
		for i, tt := range tests {
			checks[i] = tt.check
		}
		res := mustCheck(t, s, checks...)
		for i, tt := range tests {
			if got := outcome(res.Items[i]); got != tt.want {
				t.Errorf("bulk %s: %s, want %s", tt.name, got, tt.want)
			}
			if res.Items[i].Check.Subject != tt.check.Subject {
				t.Errorf("bulk item %d answers %s, asked %s", i, res.Items[i].Check, tt.check)
			}
		}
	})
}

func TestCheckBulkMixed(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		s := m.open(t, Config{}).Store
		acc := account("a1")
		grp := Object{Type: "group", ID: "family"}
		mustWrite(t, s, touch(
			rel(acc, "owner", user("alice")),
			rel(grp, "member", user("bob")),
			Relationship{Resource: acc, Relation: "viewer", Subject: grp, SubjectRelation: "member"},
			Relationship{Resource: acc, Relation: "delegate", Subject: user("carol"),
				Caveat: "within_limit", CaveatContext: map[string]any{"limit": 10}},
		))
		future := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		mustWrite(t, s, touch(Relationship{Resource: acc, Relation: "delegate", Subject: user("dave"), Expires: &future}))

		checks := []Check{
			{Resource: acc, Permission: "manage", Subject: user("alice")},
			{Resource: acc, Permission: "manage", Subject: user("bob")},
			{Resource: acc, Permission: "view", Subject: user("bob")},
			{Resource: acc, Permission: "pay", Subject: user("carol")},
			{Resource: acc, Permission: "pay", Subject: user("carol"), Context: map[string]any{"amount": 5}},
			{Resource: acc, Permission: "pay", Subject: user("dave")},
			{Resource: acc, Permission: "view", Subject: grp, SubjectRelation: "member"},
			{Resource: acc, Permission: "manage", Subject: user("alice")}, // a duplicate
		}
		want := []string{"HAS", "NO", "HAS", "CONDITIONAL[amount]", "HAS", "HAS", "HAS", "HAS"}
		for round := range 3 {
			res := mustCheck(t, s, checks...)
			for i := range checks {
				if got := outcome(res.Items[i]); got != want[i] {
					t.Errorf("round %d: %s: %s, want %s", round, checks[i], got, want[i])
				}
			}
			if res.Revision == "" {
				t.Errorf("round %d: no revision", round)
			}
		}

		rels, err := s.ReadRelationships(context.Background(), Filter{ResourceType: "account", Relation: "delegate"})
		if err != nil {
			t.Fatal(err)
		}
		var dave, carol *Relationship
		for i := range rels {
			switch rels[i].Subject.ID {
			case "dave":
				dave = &rels[i]
			case "carol":
				carol = &rels[i]
			}
		}
		if dave == nil || dave.Expires == nil || !dave.Expires.Equal(future) {
			t.Errorf("dave read back as %+v, want expiry %v", dave, future)
		}
		if carol == nil || carol.Caveat != "within_limit" || carol.CaveatContext["limit"] != 10.0 {
			t.Errorf("carol read back as %+v", carol)
		}
	})
}

func TestCheckItemError(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		s := m.open(t, Config{}).Store
		mustWrite(t, s, touch(rel(account("a1"), "owner", user("alice"))))
		_, err := s.CheckBulk(context.Background(), []Check{
			{Resource: account("a1"), Permission: "manage", Subject: user("alice")},
			{Resource: account("a1"), Permission: "bogus", Subject: user("alice")},
		})
		if err == nil {
			t.Fatal("a check of an unknown permission succeeded")
		}
		if !errors.Is(err, ErrCheckItem) && !strings.Contains(err.Error(), "bogus") {
			t.Errorf("error %v names neither ErrCheckItem nor the permission", err)
		}
		_, err = s.CheckBulk(context.Background(), []Check{{Resource: account("a1"), Permission: "pay", Subject: user("x"),
			Context: map[string]any{"amount": make(chan int)}}})
		if err == nil {
			t.Error("a context value that cannot be sent was accepted")
		}
	})
}

// TestObserve: a write through one replica is seen by another that gets its
// token, at once (and, through the Watch stream, without the token soon).
func TestObserve(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		e := m.open(t, Config{})
		if e.peer == nil {
			t.Skip("no second replica on the memory datastore")
		}
		peer := e.peer(t, Config{})
		reader := e.Store
		check := Check{Resource: account("obs"), Permission: "manage", Subject: user("olga")}
		// Warm the reader's cache with NO.
		for range 2 {
			if res := mustCheck(t, reader, check); res.Items[0].Has {
				t.Fatal("HAS before any write")
			}
		}
		token := mustWrite(t, peer, touch(rel(account("obs"), "owner", user("olga"))))
		res, err := reader.CheckBulkAtLeast(context.Background(), []Check{check}, token)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Items[0].Has {
			t.Fatal("CheckBulkAtLeast(write token) on the other replica: NO, want HAS")
		}
		floor := reader.Floor()
		if _, err := reader.CheckBulkAtLeast(context.Background(), []Check{check}, token); err != nil || reader.Floor() != floor {
			t.Errorf("a token seen before moved the floor again (err %v)", err)
		}

		// A delete on the peer reaches the reader's cache through Watch.
		if _, err := peer.DeleteRelationships(context.Background(), Filter{ResourceType: "account", ResourceID: "obs"}); err != nil {
			t.Fatal(err)
		}
		deleted := time.Now()
		deadline := deleted.Add(5 * time.Second)
		defer func() {
			t.Logf("the delete reached the reader's cache after %v", time.Since(deleted).Round(time.Millisecond))
		}()
		for mustCheck(t, reader, check).Items[0].Has {
			if time.Now().After(deadline) {
				t.Fatal("the reader still says HAS 5s after the peer's delete (Watch did not reach the cache)")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func TestWatch(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		s := m.open(t, Config{}).Store
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		events := make(chan WatchEvent, 16)
		done := make(chan error, 1)
		from := s.Floor()
		go func() {
			done <- s.Watch(ctx, from, func(ev WatchEvent) error {
				if len(ev.Changes) > 0 {
					events <- ev
				}
				return nil
			})
		}()
		r := rel(account("w1"), "owner", user("wanda"))
		token := mustWrite(t, s, touch(r))
		select {
		case ev := <-events:
			if len(ev.Changes) != 1 || ev.Changes[0].Op != OpTouch || ev.Changes[0].Rel.String() != r.String() {
				t.Errorf("event %+v, want the touch of %s", ev, r)
			}
			if ev.Revision == "" {
				t.Error("event without revision")
			}
			t.Logf("write token == watch revision: %v", ev.Revision == token)
		case err := <-done:
			t.Fatalf("Watch ended: %v", err)
		case <-ctx.Done():
			t.Fatal("no event within 20s")
		}
		if _, err := s.DeleteRelationships(ctx, Filter{ResourceType: "account", ResourceID: "w1"}); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-events:
			if len(ev.Changes) != 1 || ev.Changes[0].Op != OpDelete {
				t.Errorf("event %+v, want one delete", ev)
			}
		case <-ctx.Done():
			t.Fatal("no delete event within 20s")
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch after cancel: %v", err)
		}
	})
}

func TestImport(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		s := m.open(t, Config{}).Store
		const n = 10_000
		rels := func(yield func(Relationship) bool) {
			for i := range n {
				r := rel(account(fmt.Sprintf("acc%05d", i)), "owner", user(fmt.Sprintf("u%04d", i%1000)))
				if i%10 == 0 {
					r = Relationship{Resource: r.Resource, Relation: "delegate", Subject: r.Subject,
						Caveat: "within_limit", CaveatContext: map[string]any{"limit": i}}
				}
				if !yield(r) {
					return
				}
			}
		}
		var progress []int
		res, err := s.ImportRelationships(context.Background(), rels, 1000, func(sent int) { progress = append(progress, sent) })
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: imported %d in %v (%.0f/s)", m.name, res.Loaded, res.Elapsed.Round(time.Millisecond), res.PerSecond())
		if res.Loaded != n || len(progress) != n/1000 || progress[len(progress)-1] != n || res.Revision != s.Floor() {
			t.Fatalf("result %+v, progress %v", res, progress)
		}
		res2 := mustCheck(t, s,
			Check{Resource: account("acc00001"), Permission: "manage", Subject: user("u0001")},
			Check{Resource: account("acc09999"), Permission: "manage", Subject: user("u0999")},
			Check{Resource: account("acc00001"), Permission: "manage", Subject: user("u0002")},
			Check{Resource: account("acc00020"), Permission: "pay", Subject: user("u0020"), Context: map[string]any{"amount": 20}},
			Check{Resource: account("acc00020"), Permission: "pay", Subject: user("u0020"), Context: map[string]any{"amount": 21}},
		)
		got := make([]string, len(res2.Items))
		for i, r := range res2.Items {
			got[i] = outcome(r)
		}
		if want := []string{"HAS", "HAS", "NO", "HAS", "NO"}; !slices.Equal(got, want) {
			t.Errorf("after import: %v, want %v", got, want)
		}
		// Importing an existing relationship fails, as a whole.
		_, err = s.ImportRelationships(context.Background(), slices.Values([]Relationship{
			rel(account("fresh"), "owner", user("x")),
			rel(account("acc00001"), "owner", user("u0001")),
		}), 0, nil)
		if err == nil {
			t.Error("importing a duplicate succeeded")
		}
		if mustCheck(t, s, Check{Resource: account("fresh"), Permission: "manage", Subject: user("x")}).Items[0].Has {
			t.Error("a failed import left part of its relationships")
		}
	})
}

// TestFailClosed: when SpiceDB is gone or slow, every check is an error.
func TestFailClosed(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		e := m.open(t, Config{CallTimeout: 2 * time.Second})
		check := Check{Resource: account("a1"), Permission: "manage", Subject: user("alice")}
		mustWrite(t, e.Store, touch(rel(account("a1"), "owner", user("alice"))))
		mustCheck(t, e.Store, check)
		mustCheck(t, e.Store, check) // cached now

		expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		if _, err := e.CheckBulk(expired, []Check{{Resource: account("a2"), Permission: "manage", Subject: user("alice")}}); err == nil {
			t.Error("a check with an expired deadline succeeded")
		}

		e.stopServer()
		started := time.Now()
		// Not cached: an error at once.
		if res, err := e.CheckBulk(context.Background(), []Check{{Resource: account("a9"), Permission: "manage", Subject: user("zed")}}); err == nil {
			t.Errorf("uncached check with SpiceDB stopped: %+v, want an error", res)
		}
		// Cached: an error as soon as the change stream has broken (which
		// takes the cache offline), in practice at once too.
		for {
			_, err := e.CheckBulk(context.Background(), []Check{check})
			if err != nil {
				break
			}
			if time.Since(started) > 2*time.Second {
				t.Fatal("cached check still answered 2s after SpiceDB stopped")
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("failing closed took %v", time.Since(started))
		if d := time.Since(started); d > 3*time.Second {
			t.Errorf("failing took %v", d)
		}
		if _, err := e.WriteRelationships(context.Background(), touch(rel(account("a1"), "owner", user("bob")))); err == nil {
			t.Error("write with SpiceDB stopped succeeded")
		}
	})
}

func TestOpenUnreachable(t *testing.T) {
	// A listener that accepts and never answers: Open must give up in time.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	started := time.Now()
	_, err = Open(context.Background(), Config{Engine: EngineRemote, Endpoint: l.Addr().String(), PresharedKey: "k",
		Insecure: true, CallTimeout: 300 * time.Millisecond}, testLog)
	if err == nil {
		t.Fatal("Open of a silent endpoint succeeded")
	}
	if d := time.Since(started); d > 3*time.Second {
		t.Errorf("Open gave up after %v, want about the call timeout", d)
	}
	_, err = Open(context.Background(), Config{Engine: EngineRemote, Endpoint: freeAddr(t), PresharedKey: "k", Insecure: true}, testLog)
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
}

func TestClosed(t *testing.T) {
	s := openT(t, Config{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CheckBulk(context.Background(), []Check{{Resource: account("a"), Permission: "p", Subject: user("u")}}); !errors.Is(err, ErrClosed) {
		t.Errorf("CheckBulk after Close: %v", err)
	}
	if _, err := s.WriteRelationships(context.Background(), touch(rel(account("a"), "owner", user("u")))); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteRelationships after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
