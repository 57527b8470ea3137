package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"testing"
)

func TestValueSpecs(t *testing.T) {
	in := &valueInput{
		vars:   map[string]string{"id": "acc-1"},
		header: http.Header{"X-Amount": {"250.5"}, "X-Flag": {"TRUE"}, "X-Bad": {"1e999"}},
		query:  url.Values{"currency": {"EUR"}},
		claims: map[string]any{"acr": "loa3", "age": float64(42), "mfa": true, "amr": []any{"pwd", "otp"}},
	}
	tests := []struct {
		spec    string
		want    any
		present bool
		err     bool // a request-time conversion error
	}{
		{"{id}", "acc-1", true, false},
		{"header:X-Amount|number", json.Number("250.5"), true, false},
		{"header:x-amount", "250.5", true, false},
		{"header:X-Flag|bool", true, true, false},
		{"header:X-Missing", nil, false, false},
		{"header:X-Bad|number", nil, false, true},
		{"header:X-Flag|number", nil, false, true},
		{"query:currency", "EUR", true, false},
		{"query:missing", nil, false, false},
		{"claim:acr", "loa3", true, false},
		{"claim:age|number", json.Number("42"), true, false},
		{"claim:age", "42", true, false},
		{"claim:mfa|bool", true, true, false},
		{"claim:amr", []any{"pwd", "otp"}, true, false},
		{"claim:acr|number", nil, false, true},
		{"claim:missing", nil, false, false},
		{"account_servicing", "account_servicing", true, false},
		{"250|number", json.Number("250"), true, false},
		{"value:header:X-Amount", "header:X-Amount", true, false},
		{"a|b", "a|b", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			v, err := parseValue(tt.spec)
			if err != nil {
				t.Fatalf("parseValue: %v", err)
			}
			got, ok, err := v.resolve(in)
			if tt.err {
				if !errors.Is(err, errValue) {
					t.Fatalf("err = %v, want errValue", err)
				}
				return
			}
			if err != nil || ok != tt.present || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, %v, %v; want %#v, %v", got, ok, err, tt.want, tt.present)
			}
		})
	}
	for _, bad := range []string{"{}", "{a-b}", "x{id}", "header:", "header:X Y", "query:", "claim:", "abc|number", "yes|bool", "0x10|number"} {
		if _, err := parseValue(bad); err == nil {
			t.Errorf("parseValue(%q) accepted", bad)
		}
	}
}

// FuzzParseValue: value specs never panic, and a literal that parses
// resolves without error.
func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"{id}", "header:X|number", "value:a|bool", "1.5|number", "a|b|number", "query:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseValue(s)
		if err != nil || v.src != srcLiteral {
			return
		}
		if _, ok, err := v.resolve(&valueInput{}); err != nil || !ok {
			t.Fatalf("literal %q: %v, %v", s, ok, err)
		}
	})
}
