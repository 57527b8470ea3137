package actorproof

import (
	"encoding/json"
	"testing"
)

// FuzzClientOf: whatever claims a verified token carries, ClientOf never
// panics, and a client it names is the token's non-empty azp or client_id
// (both, when both are present).
func FuzzClientOf(f *testing.F) {
	for _, s := range []string{`{"azp":"budget-app-web"}`, `{"client_id":"c"}`, `{"azp":"a","client_id":"b"}`, `{"azp":"a","client_id":"a"}`,
		`{"azp":["a"]}`, `{"azp":""}`, `{}`, `{"aud":"x"}`, `{"client_id":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var claims map[string]any
		if json.Unmarshal(data, &claims) != nil {
			return
		}
		c, err := ClientOf(claims)
		if err != nil {
			if c != "" {
				t.Fatalf("%q with an error", c)
			}
			return
		}
		azp, hasAZP := claims["azp"]
		cid, hasCID := claims["client_id"]
		switch {
		case c == "":
			t.Fatal("an empty client without an error")
		case hasAZP && azp != c, hasCID && cid != c, !hasAZP && !hasCID:
			t.Fatalf("client %q from %s", c, data)
		}
	})
}
