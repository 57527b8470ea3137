package actorproof

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestMemorySpentShareOfOneUser: one user minting token after token fills
// their own share of the store (a hundredth, at least 100), not everyone's;
// the share frees as their tokens expire.
func TestMemorySpentShareOfOneUser(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	m := NewMemorySpent(20_000, clk.now) // share: 200
	ctx := context.Background()
	until := clk.now().Add(time.Hour)
	for i := range 200 {
		if fresh, err := m.SpendFor(ctx, "mallory", issuer, fmt.Sprintf("m-%d", i), until); !fresh || err != nil {
			t.Fatalf("mallory's token %d: %v %v", i, fresh, err)
		}
	}
	if fresh, err := m.SpendFor(ctx, "mallory", issuer, "m-200", until); fresh || !errors.Is(err, ErrSubjectFull) {
		t.Fatalf("mallory past her share: %v %v, want ErrSubjectFull", fresh, err)
	}
	if fresh, err := m.SpendFor(ctx, "alice", issuer, "a-1", until); !fresh || err != nil {
		t.Fatalf("alice while mallory is at her share: %v %v", fresh, err)
	}
	clk.add(time.Hour + time.Second) // mallory's tokens expire
	if fresh, err := m.SpendFor(ctx, "mallory", issuer, "m-201", clk.now().Add(time.Minute)); !fresh || err != nil {
		t.Fatalf("mallory once her tokens expired: %v %v", fresh, err)
	}
}

// TestProveRefusesTokensFromBeforeAMemoryStore: a store kept in memory
// starts empty at every restart, so a token issued before it started may
// have been used already: refused (401), and a fresh one is accepted.
func TestProveRefusesTokensFromBeforeAMemoryStore(t *testing.T) {
	priv := newKey(t)
	key := jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	p := boundProver(t, key, clk, nil, NewMemorySpent(10, clk.now))
	tok := func(iat time.Time, jti string) string {
		return sign(t, priv, map[string]any{"iss": issuer, "aud": audience, "sub": "alice", "iat": iat.Unix(), "exp": clk.now().Add(time.Hour).Unix(), "jti": jti})
	}
	for _, tc := range []struct {
		name    string
		iat     time.Time
		wantErr error
	}{
		{"issued an hour before the process", clk.now().Add(-time.Hour), ErrUnproven},
		{"issued within the leeway before", clk.now().Add(-testLeeway / 2), nil},
		{"issued after", clk.now().Add(time.Second), nil},
	} {
		err := p.Prove(WithToken(context.Background(), tok(tc.iat, strings.ReplaceAll(tc.name, " ", "-"))), "", SubjectType, "alice")
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
		}
	}
}
