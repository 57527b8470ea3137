package dormancy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzDecodeChange: the body decoder never panics, and what it accepts
// names an actor and round-trips.
func FuzzDecodeChange(f *testing.F) {
	for _, s := range []string{`{"actor":{"type":"user","id":"alice"}}`, `{"actor":{"type":"staff","id":"kim"},"reason":"seen"}`,
		`{}`, `{"actor":{"type":"u:x","id":"a"}}`, `{"actor":{"type":"user","id":"a"}} {}`, `[]`, `{"actor":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeChange(bytes.NewReader(data))
		if err != nil {
			return
		}
		if b.Actor.Type == "" || b.Actor.ID == "" || strings.ContainsAny(b.Actor.Type, ":#") || len(b.Reason) > MaxReason {
			t.Fatalf("accepted %+v", b)
		}
		raw, _ := json.Marshal(b)
		again, err := DecodeChange(bytes.NewReader(raw))
		if err != nil || again != b {
			t.Fatalf("round trip: %v %+v %+v", err, again, b)
		}
	})
}

// FuzzParseRules: the rules parser never panics, and accepted rules are
// well formed.
func FuzzParseRules(f *testing.F) {
	for _, s := range []string{"identities:\n  - {id: a, after: 365d, step_up: [view], revalidate: [pay]}\n",
		"delegations:\n  - {id: p, basis: power_of_attorney, unused_after: 730d}\n", "", "version: 1", "identities: [", "identities:\n  - {id: a, after: 99999999999999d, revalidate: [x]}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRules(data)
		if err != nil {
			return
		}
		for i, ir := range r.Identities {
			if ir.ID == "" || ir.After <= 0 || (i > 0 && ir.After > r.Identities[i-1].After) {
				t.Fatalf("identity rule %d: %+v", i, ir)
			}
		}
		for _, dr := range r.Delegations {
			if dr.ID == "" || dr.Basis == "" || dr.UnusedAfter <= 0 {
				t.Fatalf("delegation rule %+v", dr)
			}
		}
	})
}

// FuzzDecodeRevalidation: a stored line decodes to a revalidation that
// names what it revalidates, or is refused.
func FuzzDecodeRevalidation(f *testing.F) {
	for _, s := range []string{`{"id":"rv-1","kind":"identity","subject":{"type":"user","id":"heidi"},"at":"2026-12-01T00:00:00Z","position":1}`,
		`{"id":"rv-2","kind":"delegation","delegation":"poa","subject":{"type":"user","id":"alice"},"at":"2026-12-01T00:00:00Z","position":2}`,
		`{"id":"rv-3","kind":"delegation","at":"2026-12-01T00:00:00Z"}`, `{}`, `nul`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRevalidation(data)
		if err != nil {
			return
		}
		if r.ID == "" || r.At.IsZero() || (r.Kind == KindDelegation && r.Delegation == "") || (r.Kind == KindIdentity && r.Subject.ID == "") {
			t.Fatalf("accepted %+v", r)
		}
		_ = r.Key()
	})
}

// FuzzParseSubject: a subject in a path parses to a type without '#'.
func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{"user:heidi", "heidi", ":x", "user#subject:heidi", "a:b:c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseSubject(s)
		if err != nil {
			return
		}
		if r.Type == "" || r.ID == "" || strings.ContainsRune(r.Type, '#') {
			t.Fatalf("accepted %q as %+v", s, r)
		}
	})
}
