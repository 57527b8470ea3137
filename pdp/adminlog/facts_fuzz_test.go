package adminlog

import (
	"encoding/json"
	"testing"

	"github.com/ciampdp/pdp/pdp/dormancy"
)

// FuzzDecodeSignal: any detail decodes without panic; a SET read names its
// transmitter and jti, and each event carries them and a type; a SET not
// marked invalid has only events that validate (repair stores them).
func FuzzDecodeSignal(f *testing.F) {
	s := set("https://risk.example/", "jti-1", "credential-compromise", "account-disabled")
	good, _ := json.Marshal(signalDetail{Transmitter: s.Transmitter, JTI: s.JTI, Events: s.Events})
	for _, seed := range []string{string(good), `{}`, `null`, `{"transmitter":"t","jti":"j","events":[{"type":""}]}`,
		`{"transmitter":{"$redacted":"x"},"jti":"j"}`, `{"transmitter":"t","jti":"j","events":[{"type":"x","subject":{"$redacted":"h"}}]}`,
		`{"transmitter":"t","jti":"j","events":[{"type":"x","entity":7,"time":"2026-01-01T00:00:00Z"}]}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := decodeSignal(raw)
		if !ok {
			return
		}
		if got.Transmitter == "" || got.JTI == "" {
			t.Fatalf("a SET without transmitter or jti: %+v", got)
		}
		for _, e := range got.Events {
			if e.Type == "" || e.Transmitter != got.Transmitter || e.JTI != got.JTI || e.Position != 0 {
				t.Fatalf("an event not of its SET: %+v in %+v", e, got)
			}
			if got.invalid == nil && e.Validate() != nil {
				t.Fatalf("an event that does not validate, in a SET read as storable: %+v", e)
			}
		}
		_ = got.summary()
	})
}

// FuzzDecodeRevalidation: any detail decodes without panic; a
// revalidation read has an id and a known kind, and no position.
func FuzzDecodeRevalidation(f *testing.F) {
	good, _ := json.Marshal(revalidationDetail{Revalidation: reval("rv-1")})
	for _, seed := range []string{string(good), `{}`, `{"revalidation":null}`, `{"revalidation":{"id":"x","kind":"other"}}`,
		`{"revalidation":{"id":"x","kind":"identity","subject":{"$redacted":"h"}}}`, `{"revalidation":[1]}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, ok := decodeRevalidation(raw)
		if !ok {
			return
		}
		if r.ID == "" || (r.Kind != dormancy.KindIdentity && r.Kind != dormancy.KindDelegation) || r.Position != 0 {
			t.Fatalf("decoded %+v", r)
		}
		_ = r.Key()
	})
}
