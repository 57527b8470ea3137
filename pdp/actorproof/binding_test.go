package actorproof

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// clock is a settable clock shared by a test's verifier and store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const testLeeway = 30 * time.Second

// boundProver is a Prover trusting key, on clk, bound to clients (nil:
// unbound) and single use in spent (nil: reusable).
func boundProver(t testing.TB, key jose.JSONWebKey, clk *clock, clients map[string][]string, spent Spent) *Prover {
	t.Helper()
	return issuerProver(t, issuer, key, clk, clients, spent)
}

var northbankClients = map[string][]string{
	"budget-app":     {"budget-app-web"},
	"mobile-banking": {"mobile-banking-ios", "mobile-banking-android"},
}

// TestProveBinding: with clients and single use, a token proves its
// subject only for an application listing the client it was issued to,
// and for one change.
func TestProveBinding(t *testing.T) {
	priv := newKey(t)
	key := jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	clk := &clock{t: time.Now()}
	claims := func(extra map[string]any) map[string]any {
		now := clk.now()
		c := map[string]any{"iss": issuer, "aud": audience, "sub": "alice", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
		for k, v := range extra {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	n := 0
	jti := func() string { n++; return "jti-" + strings.Repeat("x", n%3) + time.Now().Format("150405.000000000") }
	type call struct {
		app   string
		token string
		want  error  // nil, ErrUnproven or ErrReplayUnavailable
		says  string // in the message
	}
	for _, tc := range []struct {
		name    string
		clients map[string][]string
		single  bool
		calls   func() []call
	}{
		{"the right application", northbankClients, true, func() []call {
			return []call{{"budget-app", sign(t, priv, claims(map[string]any{"azp": "budget-app-web", "jti": jti()})), nil, ""}}
		}},
		{"one of the application's clients", northbankClients, true, func() []call {
			return []call{{"mobile-banking", sign(t, priv, claims(map[string]any{"azp": "mobile-banking-android", "jti": jti()})), nil, ""}}
		}},
		{"another application's token", northbankClients, true, func() []call {
			return []call{{"mobile-banking", sign(t, priv, claims(map[string]any{"azp": "budget-app-web", "jti": jti()})), ErrUnproven, `issued to the client "budget-app-web", not to one of application "mobile-banking"'s`}}
		}},
		{"client_id without azp (RFC 9068)", northbankClients, true, func() []call {
			return []call{{"budget-app", sign(t, priv, claims(map[string]any{"client_id": "budget-app-web", "jti": jti()})), nil, ""}}
		}},
		{"another application's client_id", northbankClients, true, func() []call {
			return []call{{"budget-app", sign(t, priv, claims(map[string]any{"client_id": "mobile-banking-ios", "jti": jti()})), ErrUnproven, "mobile-banking-ios"}}
		}},
		{"no azp, no client_id", northbankClients, true, func() []call {
			return []call{{"budget-app", sign(t, priv, claims(map[string]any{"jti": jti()})), ErrUnproven, "names no client"}}
		}},
		{"azp and client_id differ", northbankClients, true, func() []call {
			return []call{{"budget-app", sign(t, priv, claims(map[string]any{"azp": "budget-app-web", "client_id": "mobile-banking-ios", "jti": jti()})), ErrUnproven, "differ"}}
		}},
		{"azp not a string", northbankClients, true, func() []call {
			return []call{{"budget-app", sign(t, priv, claims(map[string]any{"azp": []string{"budget-app-web"}, "jti": jti()})), ErrUnproven, "azp is not"}}
		}},
		{"the audience is not the client", northbankClients, true, func() []call {
			return []call{{"budget-app", sign(t, priv, claims(map[string]any{"aud": []string{audience, "budget-app-web"}, "jti": jti()})), ErrUnproven, "names no client"}}
		}},
		{"an application not in the map", northbankClients, true, func() []call {
			return []call{{"marketing-hub", sign(t, priv, claims(map[string]any{"azp": "budget-app-web", "jti": jti()})), ErrUnproven, `application "marketing-hub" may not prove actors`}}
		}},
		{"unbound: any client, any application", nil, true, func() []call {
			return []call{{"marketing-hub", sign(t, priv, claims(map[string]any{"azp": "budget-app-web", "jti": jti()})), nil, ""}}
		}},
		{"jti reused", northbankClients, true, func() []call {
			tok := sign(t, priv, claims(map[string]any{"azp": "budget-app-web", "jti": jti()}))
			return []call{{"budget-app", tok, nil, ""}, {"budget-app", tok, ErrUnproven, "already used"}}
		}},
		{"the same jti in another token", northbankClients, true, func() []call {
			id := jti()
			return []call{
				{"budget-app", sign(t, priv, claims(map[string]any{"azp": "budget-app-web", "jti": id})), nil, ""},
				{"budget-app", sign(t, priv, claims(map[string]any{"azp": "budget-app-web", "jti": id, "iat": clk.now().Unix() - 1})), ErrUnproven, "already used"},
			}
		}},
		{"a refused replay does not spend the token", northbankClients, true, func() []call {
			tok := sign(t, priv, claims(map[string]any{"azp": "budget-app-web", "jti": jti()}))
			return []call{{"mobile-banking", tok, ErrUnproven, "not to one of"}, {"budget-app", tok, nil, ""}, {"mobile-banking", tok, ErrUnproven, "not to one of"}}
		}},
		{"no jti with single use", northbankClients, true, func() []call {
			return []call{{"budget-app", sign(t, priv, claims(map[string]any{"azp": "budget-app-web"})), ErrUnproven, "no jti"}}
		}},
		{"an empty jti", northbankClients, true, func() []call {
			return []call{{"budget-app", sign(t, priv, claims(map[string]any{"azp": "budget-app-web", "jti": ""})), ErrUnproven, "no jti"}}
		}},
		{"a jti too long to remember", northbankClients, true, func() []call {
			return []call{{"budget-app", sign(t, priv, claims(map[string]any{"azp": "budget-app-web", "jti": strings.Repeat("j", MaxJTIBytes+1)})), ErrUnproven, "longer than"}}
		}},
		{"reusable: no jti, used twice", northbankClients, false, func() []call {
			tok := sign(t, priv, claims(map[string]any{"azp": "budget-app-web"}))
			return []call{{"budget-app", tok, nil, ""}, {"budget-app", tok, nil, ""}}
		}},
		{"someone else's token is refused before it is spent", northbankClients, true, func() []call {
			tok := sign(t, priv, claims(map[string]any{"sub": "mallory", "azp": "budget-app-web", "jti": jti()}))
			return []call{{"budget-app", tok, ErrUnproven, "mallory"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var spent Spent
			if tc.single {
				spent = NewMemorySpent(10, clk.now)
			}
			p := boundProver(t, key, clk, tc.clients, spent)
			for i, c := range tc.calls() {
				err := p.Prove(WithToken(context.Background(), c.token), c.app, "user", "alice")
				switch {
				case c.want == nil && err != nil:
					t.Fatalf("call %d (%s): %v, want proven", i, c.app, err)
				case c.want != nil && !errors.Is(err, c.want):
					t.Fatalf("call %d (%s): %v, want %v", i, c.app, err, c.want)
				case c.want != nil && !strings.Contains(err.Error(), c.says):
					t.Fatalf("call %d (%s): %q does not say %q", i, c.app, err, c.says)
				}
			}
		})
	}
}

// TestProveSingleUseUntilExpiry: a spent jti is refused until the token's
// exp plus the leeway (while the token still verifies), then forgotten.
func TestProveSingleUseUntilExpiry(t *testing.T) {
	priv := newKey(t)
	key := jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	spent := NewMemorySpent(10, clk.now)
	p := boundProver(t, key, clk, nil, spent)
	exp := clk.now().Add(time.Minute)
	tok := sign(t, priv, map[string]any{"iss": issuer, "aud": audience, "sub": "alice", "iat": clk.now().Unix(), "exp": exp.Unix(), "jti": "once"})
	ctx := WithToken(context.Background(), tok)
	if err := p.Prove(ctx, "app", "user", "alice"); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute + testLeeway - time.Second) // expired, within the leeway: it still verifies
	if err := p.Prove(ctx, "app", "user", "alice"); !errors.Is(err, ErrUnproven) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("replay within the leeway: %v", err)
	}
	clk.add(2 * time.Second)
	if err := p.Prove(ctx, "app", "user", "alice"); !errors.Is(err, ErrUnproven) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("after the leeway: %v, want the token expired", err)
	}
	if n := spent.Len(); n != 1 {
		t.Fatalf("%d uses remembered before the next spend, want 1", n)
	}
	if fresh, err := spent.Spend(context.Background(), issuer, "other", clk.now().Add(time.Minute)); !fresh || err != nil {
		t.Fatalf("spend: %v %v", fresh, err)
	}
	if n := spent.Len(); n != 1 {
		t.Fatalf("%d uses remembered, want 1: the expired one is forgotten", n)
	}
}

// TestMemorySpent: uses are remembered until their expiry, at most the
// capacity (then Spend refuses, fail closed), and forgotten after.
func TestMemorySpent(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	m := NewMemorySpent(3, clk.now)
	ctx := context.Background()
	at := func(d time.Duration) time.Time { return clk.now().Add(d) }
	for _, tc := range []struct {
		name      string
		jti       string
		until     time.Time
		fresh     bool
		wantErr   error
		advance   time.Duration // before the spend
		remembers int
	}{
		{"a", "a", at(time.Minute), true, nil, 0, 1},
		{"a again", "a", at(time.Hour), false, nil, 0, 1},
		{"b", "b", at(2 * time.Minute), true, nil, 0, 2},
		{"c", "c", at(3 * time.Minute), true, nil, 0, 3},
		{"full", "d", at(time.Minute), false, ErrReplayUnavailable, 0, 3},
		{"c while full", "c", at(time.Minute), false, nil, 0, 3},
		{"a expired: forgotten, d fits", "d", at(5 * time.Minute), true, nil, time.Minute, 3},
		{"a again after expiry", "a", at(5 * time.Minute), false, ErrReplayUnavailable, 0, 3},
		{"b and c expired", "a", at(10 * time.Minute), true, nil, 2 * time.Minute, 2},
		{"d still remembered", "d", at(10 * time.Minute), false, nil, 0, 2},
	} {
		clk.add(tc.advance)
		fresh, err := m.Spend(ctx, issuer, tc.jti, tc.until)
		if fresh != tc.fresh || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
			t.Fatalf("%s: %v %v, want %v %v", tc.name, fresh, err, tc.fresh, tc.wantErr)
		}
		if tc.wantErr != nil && m.Full() == 0 {
			t.Fatalf("%s: a refusal not counted", tc.name)
		}
		if n := m.Len(); n != tc.remembers {
			t.Fatalf("%s: %d remembered, want %d", tc.name, n, tc.remembers)
		}
	}
}

// TestMemorySpentBounded: however many tokens, one process never holds
// more than the capacity; concurrent spends of one jti give one winner.
func TestMemorySpentBounded(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	m := NewMemorySpent(1000, clk.now)
	ctx := context.Background()
	refused := 0
	for i := range 5000 {
		if i%1000 == 0 {
			clk.add(time.Minute) // the previous thousand expire
		}
		if _, err := m.Spend(ctx, issuer, "jti-"+strings.Repeat("x", i%7)+time.Unix(int64(i), 0).String(), clk.now().Add(30*time.Second)); err != nil {
			refused++
		}
		if m.Len() > 1000 {
			t.Fatalf("%d remembered, capacity 1000", m.Len())
		}
	}
	if refused != 0 {
		t.Fatalf("%d refused although each thousand expired before the next", refused)
	}
	clk.add(time.Minute)
	var wg sync.WaitGroup
	wins := make(chan bool, 50)
	for range 50 {
		wg.Go(func() {
			fresh, err := m.Spend(ctx, issuer, "contested", clk.now().Add(time.Minute))
			wins <- fresh && err == nil
		})
	}
	wg.Wait()
	close(wins)
	n := 0
	for w := range wins {
		if w {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d spends of one jti won, want 1", n)
	}
}

// BenchmarkProveBound: BenchmarkProve with the binding to the calling
// application's clients (single use is BenchmarkMemorySpent's).
func BenchmarkProveBound(b *testing.B) {
	priv := newKey(b)
	clk := &clock{t: time.Now()}
	p := boundProver(b, jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: "ES256", Use: "sig"}, clk, northbankClients, nil)
	ctx := WithToken(context.Background(), sign(b, priv, map[string]any{"iss": issuer, "aud": audience, "sub": "alice", "azp": "budget-app-web",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Prove(ctx, "budget-app", "user", "alice"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemorySpent: one use recorded in a store holding 100 000
// unexpired uses, the oldest expiring as new ones arrive.
func BenchmarkMemorySpent(b *testing.B) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	const live = 100_000
	m := NewMemorySpent(live+1, clk.now)
	ctx := context.Background()
	ids := make([]string, 1<<20)
	for i := range ids {
		ids[i] = fmt.Sprintf("jti-%016x", i)
	}
	i := 0
	spend := func() {
		clk.add(time.Millisecond)
		if fresh, err := m.Spend(ctx, issuer, ids[i%len(ids)], clk.now().Add(live*time.Millisecond)); !fresh || err != nil {
			b.Fatalf("spend %d: %v %v", i, fresh, err)
		}
		i++
	}
	for range live {
		spend()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		spend()
	}
}
