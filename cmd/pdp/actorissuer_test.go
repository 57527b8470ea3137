package main

import (
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
)

// TestActorTokensSingleUsePerIssuer: a jti is unique per issuer only. Two
// replicas on one PostgreSQL trusting two identity providers (the second
// issuer, say, during a move to a new one) each accept their issuer's
// token once although both tokens carry the same jti, and each refuses
// its token on the second use.
func TestActorTokensSingleUsePerIssuer(t *testing.T) {
	uri := testDatabase(t)
	for _, k := range []string{"RELATIONS", "DELEGATIONS", "CONSENT"} {
		t.Setenv("PDP_"+k+"_ENGINE", "postgres")
		t.Setenv("PDP_"+k+"_POSTGRES_URL", uri)
	}
	const otherIssuer = "https://idp2.northbank.example/"
	a := startNorthbankActorTokens(t)
	t.Setenv("PDP_AUTH_ACTOR_TOKENS_ISSUER", otherIssuer)
	b := startNorthbankActorTokens(t)
	jti := rand.Text()
	tokA := actorToken(t, "mobile-banking", "alice", map[string]any{"jti": jti})
	tokB := actorToken(t, "mobile-banking", "alice", map[string]any{"jti": jti, "iss": otherIssuer})
	for _, tc := range []struct {
		name   string
		s      *server
		op     string
		token  string
		code   int
		reason string
	}{
		{"issuer 1's token on replica a", a, "suspend", tokA, http.StatusOK, ""},
		{"issuer 2's token, same jti, on replica b", b, "resume", tokB, http.StatusOK, ""},
		{"issuer 1's token again", a, "suspend", tokA, http.StatusUnauthorized, "actor_unproven"},
		{"issuer 2's token again", b, "suspend", tokB, http.StatusUnauthorized, "actor_unproven"},
	} {
		r := tc.s.admin(t, "mobile-banking", http.MethodPost, "/v1/delegations/poa-alice-bob/"+tc.op, actorBody("alice"), tc.token)
		if r.Code != tc.code || r.Reason != tc.reason || (tc.code != http.StatusOK && !strings.Contains(r.Error, "already used")) {
			t.Fatalf("%s: %d %s, want %d %s", tc.name, r.Code, r.Body, tc.code, tc.reason)
		}
	}
	if st := a.delegationStatus(t, "poa-alice-bob"); st != "active" {
		t.Fatalf("poa-alice-bob is %s, want active (suspended, resumed, then nothing)", st)
	}
}
