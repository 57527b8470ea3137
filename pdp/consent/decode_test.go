package consent

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const choiceJSON = `{
  "subject": {"type": "user", "id": "carol"},
  "actor": {"type": "user", "id": "dave"},
  "delegation": "guardian-carol-dave",
  "purpose": "marketing",
  "applications": ["marketing-hub"],
  "jurisdiction": "DE",
  "notice": {"uri": "https://northbank.example/privacy/marketing", "version": 3, "hash": "sha256:ab", "language": "de"},
  "channel": "branch",
  "evidence": "form-123",
  "at": "2026-05-01T10:00:00+02:00",
  "expires": "2027-05-01T00:00:00Z"
}`

func TestDecodeChoice(t *testing.T) {
	got, err := DecodeChoice(strings.NewReader(choiceJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := ChoiceRequest{
		Subject: Ref{"user", "carol"}, Actor: Ref{"user", "dave"}, Delegation: "guardian-carol-dave",
		Purpose: "marketing", Applications: []string{"marketing-hub"}, Jurisdiction: "DE",
		Notice:  Notice{URI: "https://northbank.example/privacy/marketing", Version: 3, Hash: "sha256:ab", Language: "de"},
		Channel: "branch", Evidence: "form-123", At: ymd(2026, 5, 1).Add(8 * 60 * 60e9), Expires: timep(ymd(2027, 5, 1)),
	}
	if jsonOf(t, got) != jsonOf(t, want) || !got.At.Equal(want.At) {
		t.Errorf("DecodeChoice =\n%s\nwant\n%s", jsonOf(t, got), jsonOf(t, want))
	}
	if got.Application != "" {
		t.Error("the body set the application")
	}
}

func TestDecodeErrors(t *testing.T) {
	replace := func(old, new string) string { return strings.Replace(choiceJSON, old, new, 1) }
	tests := []struct {
		name, body, want string
	}{
		{"bad time", replace(`"2027-05-01T00:00:00Z"`, `"2027-05-01"`), `expires: want RFC 3339 time (like 2026-01-01T00:00:00Z), got "2027-05-01"`},
		{"time as number", replace(`"2027-05-01T00:00:00Z"`, `1924905600`), "expires: want string, got JSON number"},
		{"bad at", replace(`"2026-05-01T10:00:00+02:00"`, `"yesterday"`), "at: want RFC 3339 time"},
		{"unknown field", replace(`"channel": "branch"`, `"channel": "branch", "colour": "red"`), `unknown field "colour"`},
		{"the application in the body", replace(`"channel": "branch"`, `"channel": "branch", "application": "marketing-hub"`), `unknown field "application"`},
		{"unknown nested field", replace(`"language": "de"`, `"language": "de", "font": "serif"`), `unknown field "font"`},
		{"applications as string", replace(`["marketing-hub"]`, `"marketing-hub"`), "applications: want array of strings, got JSON string"},
		{"notice version as fraction", replace(`"version": 3`, `"version": 3.5`), "notice.version: want number"},
		{"subject as string", replace(`{"type": "user", "id": "carol"}`, `"carol"`), "subject: want object"},
		{"array body", `[]`, "want object"},
		{"trailing data", choiceJSON + ` {}`, "data after the choice object"},
		{"trailing garbage", choiceJSON + ` x`, "data after the choice object"},
		{"empty", ``, "empty body"},
		{"truncated", choiceJSON[:40], "truncated JSON"},
		{"not json", `{purpose: marketing}`, "invalid JSON at byte 2"},
		{"too large", `{"evidence": "` + strings.Repeat("x", MaxRequestBytes) + `"}`, "larger than"},
	}
	for _, tt := range tests {
		_, err := DecodeChoice(strings.NewReader(tt.body))
		if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), tt.want) || statusOf(err) != 400 {
			t.Errorf("%s: %v, want ErrDecode naming %q", tt.name, err, tt.want)
		}
	}
	for _, tt := range []struct{ name, body, want string }{
		{"all as string", `{"subject":{"type":"user","id":"a"},"all":"yes"}`, "all: want true or false"},
		{"unknown", `{"subject":{"type":"user","id":"a"},"purposes":["x"]}`, `unknown field "purposes"`},
		{"trailing", `{"all":true}{}`, "data after the withdrawal object"},
	} {
		if _, err := DecodeWithdraw(strings.NewReader(tt.body)); !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("withdraw %s: %v, want %q", tt.name, err, tt.want)
		}
	}
	for _, tt := range []struct{ name, body, want string }{
		{"bad expires", `{"grant_id":"g","expires":"soon"}`, "expires: want RFC 3339"},
		{"unknown", `{"grant_id":"g","purpose":"x"}`, `unknown field "purpose"`},
	} {
		if _, err := DecodeRenew(strings.NewReader(tt.body)); !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("renew %s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestDecodeWithdrawRenew(t *testing.T) {
	w, err := DecodeWithdraw(strings.NewReader(`{"subject":{"type":"user","id":"alice"},"grant_id":"cev-1","reason":"moved","revoke":true}`))
	if err != nil || w.Subject.ID != "alice" || w.GrantID != "cev-1" || !w.Revoke || w.Reason != "moved" || w.All {
		t.Errorf("DecodeWithdraw = %+v, %v", w, err)
	}
	r, err := DecodeRenew(strings.NewReader(`{"subject":{"type":"user","id":"judy"},"grant_id":"g","notice":{"uri":"u","version":2},"expires":"2027-01-01T00:00:00Z"}`))
	if err != nil || r.GrantID != "g" || r.Notice.Version != 2 || !r.Expires.Equal(ymd(2027, 1, 1)) {
		t.Errorf("DecodeRenew = %+v, %v", r, err)
	}
}

// roundTrip checks that what a decoder accepted encodes to a body that
// decodes to the same request.
func roundTrip[T any](t *testing.T, decode func(r *bytes.Reader) (T, error), v T) {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %+v: %v", v, err)
	}
	again, err := decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode of the encoding %s: %v", b, err)
	}
	if jsonOf(t, again) != string(b) {
		t.Fatalf("round trip:\n%s\n%s", b, jsonOf(t, again))
	}
}

func FuzzDecodeChoice(f *testing.F) {
	f.Add([]byte(choiceJSON))
	f.Add([]byte(`{"subject":{"type":"user","id":"a"},"at":"2026-01-01T00:00:00.5-01:00"}`))
	f.Add([]byte(`{"expires":null,"notice":{}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := DecodeChoice(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		roundTrip(t, func(r *bytes.Reader) (ChoiceRequest, error) { return DecodeChoice(r) }, c)
	})
}

func FuzzDecodeWithdraw(f *testing.F) {
	f.Add([]byte(`{"subject":{"type":"user","id":"alice"},"all":true,"reason":"x"}`))
	f.Add([]byte(`{"grant_id":"g","revoke":false}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		w, err := DecodeWithdraw(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		roundTrip(t, func(r *bytes.Reader) (WithdrawRequest, error) { return DecodeWithdraw(r) }, w)
	})
}

func FuzzDecodeRenew(f *testing.F) {
	f.Add([]byte(`{"subject":{"type":"user","id":"judy"},"grant_id":"g","notice":{"uri":"u","version":2},"expires":"2027-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeRenew(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		roundTrip(t, func(r *bytes.Reader) (RenewRequest, error) { return DecodeRenew(r) }, r)
	})
}
