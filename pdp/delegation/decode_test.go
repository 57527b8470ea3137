package delegation

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const offerJSON = `{
  "id": "dlg-bob",
  "actor": {"type": "user", "id": "alice"},
  "principal": {"type": "user", "id": "alice"},
  "agent": {"type": "user", "id": "bob"},
  "basis": "power_of_attorney",
  "source": "self_declared",
  "scope": ["view_statements", "make_payment"],
  "resources": [{"type": "account", "id": "acc-alice"}],
  "constraints": {"max_amount": 1000, "currency": "EUR"},
  "valid_from": "2026-01-01T00:00:00+01:00",
  "valid_until": "2030-12-31T00:00:00Z",
  "max_depth": 1
}`

func TestDecodeOffer(t *testing.T) {
	got, err := DecodeOffer(strings.NewReader(offerJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := OfferRequest{
		ID: "dlg-bob", By: Actor{Subject: Ref{"user", "alice"}},
		Principal: Ref{"user", "alice"}, Agent: Ref{"user", "bob"}, Basis: BasisPowerOfAttorney, Source: SourceSelfDeclared,
		Scope: []string{"view_statements", "make_payment"}, Resources: []Ref{{"account", "acc-alice"}},
		Constraints: Constraints{MaxAmount: amount(1000), Currency: "EUR"},
		ValidFrom:   date(2025, 12, 31).Add(23 * 60 * 60e9), ValidUntil: date(2030, 12, 31), MaxDepth: 1,
	}
	if jsonOf(t, got) != jsonOf(t, want) {
		t.Errorf("DecodeOffer =\n%s\nwant\n%s", jsonOf(t, got), jsonOf(t, want))
	}
}

func TestDecodeOfferErrors(t *testing.T) {
	replace := func(old, new string) string { return strings.Replace(offerJSON, old, new, 1) }
	tests := []struct {
		name, body, want string
	}{
		{"bad time", replace(`"2030-12-31T00:00:00Z"`, `"2030-12-31"`), `valid_until: want RFC 3339 time (like 2026-01-01T00:00:00Z), got "2030-12-31"`},
		{"time as number", replace(`"2030-12-31T00:00:00Z"`, `1924905600`), "valid_until: want string, got JSON number"},
		{"bad from", replace(`"2026-01-01T00:00:00+01:00"`, `"yesterday"`), "valid_from: want RFC 3339 time"},
		{"unknown field", replace(`"max_depth": 1`, `"max_depth": 1, "colour": "red"`), `unknown field "colour"`},
		{"unknown nested field", replace(`"currency": "EUR"`, `"currency": "EUR", "per": "day"`), `unknown field "per"`},
		{"scope as string", replace(`["view_statements", "make_payment"]`, `"view_statements"`), "scope: want array of strings, got JSON string"},
		{"amount as string", replace(`"max_amount": 1000`, `"max_amount": "1000"`), "constraints.max_amount: want number, got JSON string"},
		{"depth as fraction", replace(`"max_depth": 1`, `"max_depth": 1.5`), "max_depth: want number"},
		{"basis as number", replace(`"power_of_attorney"`, `7`), "basis: want string"},
		{"array body", `[]`, "want object"},
		{"trailing data", offerJSON + ` {}`, "data after the offer object"},
		{"trailing garbage", offerJSON + ` x`, "data after the offer object"},
		{"empty", ``, "empty body"},
		{"truncated", offerJSON[:40], "truncated JSON"},
		{"syntax", `{"id": }`, "invalid JSON at byte"},
		{"too large", `{"id": "` + strings.Repeat("x", MaxOfferBytes) + `"}`, "larger than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeOffer(strings.NewReader(tt.body))
			if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("DecodeOffer = %v, want ErrDecode with %q", err, tt.want)
			}
		})
	}
}

// FuzzDecodeOffer: any input decodes or fails with ErrDecode, never panics;
// what decodes encodes to JSON that decodes to the same offer.
func FuzzDecodeOffer(f *testing.F) {
	f.Add([]byte(offerJSON))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"valid_until": "2030-01-01T00:00:00.123456789-07:00", "scope": null, "resources": []}`))
	f.Add([]byte(`{"constraints": {"max_amount": 1e308}} `))
	f.Add([]byte(`{"actor": {"type": "user", "id": "\u00e9"}}`))
	f.Add([]byte(`{"id": "a"}{"id": "b"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := DecodeOffer(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		enc, err := json.Marshal(o)
		if err != nil {
			t.Fatalf("encode a decoded offer: %v", err)
		}
		again, err := DecodeOffer(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("decode %s: %v", enc, err)
		}
		if a, b := jsonOf(t, o), jsonOf(t, again); a != b {
			t.Fatalf("round trip changed the offer:\n%s\n%s", a, b)
		}
	})
}

// FuzzDecodeRecord: a stored record that decodes survives re-encoding.
func FuzzDecodeRecord(f *testing.F) {
	d := record("dlg-1", Ref{"user", "alice"}, Ref{"user", "bob"}, today)
	b, _ := json.Marshal(d)
	f.Add(b)
	f.Add([]byte(`{"id":"x","history":[{"seq":1}],"accepted_at":"2026-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Delegation
		if json.Unmarshal(data, &d) != nil {
			return
		}
		enc, err := json.Marshal(d)
		if err != nil {
			return // a time json cannot write (year > 9999): the store never makes one
		}
		var again Delegation
		if err := json.Unmarshal(enc, &again); err != nil {
			t.Fatalf("decode %s: %v", enc, err)
		}
		if jsonOf(t, again) != string(enc) {
			t.Fatalf("round trip changed the record:\n%s\n%s", enc, jsonOf(t, again))
		}
		_ = again.Clone().Effective(today)
	})
}
