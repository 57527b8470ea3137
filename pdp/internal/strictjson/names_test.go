package strictjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCheckNames(t *testing.T) {
	for _, tc := range []struct {
		name, body, where string // where: "" means no error
	}{
		{"distinct", `{"subject":{"type":"user","id":"alice"},"context":{"a":1,"b":[{"a":2},{"a":3}]}}`, ""},
		{"top level", `{"id":"mallory","id":"alice"}`, `"id" in the top-level object`},
		{"nested", `{"subject":{"type":"user","id":"mallory","id":"alice"}}`, `"id" in /subject`},
		{"other case", `{"subject":{"id":"mallory","ID":"alice"}}`, `"ID" in /subject`},
		{"kelvin sign folds to k", `{"k":1,"\u212a":2}`, "in the top-level object"},
		{"in an array item", `{"evaluations":[{"resource":{}},{"resource":{},"resource":{}}]}`, `"resource" in /evaluations/1`},
		{"same name in sibling objects", `{"a":{"x":1},"b":{"x":2}}`, ""},
		{"array of strings is not names", `{"scope":["view","view"]}`, ""},
		{"malformed is left to the decoder", `{"a":`, ""},
		{"not an object", `[1,2]`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckNames([]byte(tc.body))
			if tc.where == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrDuplicateName) || !strings.Contains(err.Error(), tc.where) {
				t.Fatalf("got %v, want a duplicate name error with %q", err, tc.where)
			}
		})
	}
}

// FuzzCheckNames: never panics, and a body it accepts that encoding/json
// decodes into a map has as many members as its names.
func FuzzCheckNames(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"a":2}`, `{"a":{"b":[1,{"c":2,"C":3}]}}`, `{"id":"x","ID":"y"}`, `[{"a":1}]`, `"x"`, `{"a":`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := CheckNames(data)
		if err != nil {
			if !errors.Is(err, ErrDuplicateName) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil {
			return
		}
		var raw map[string]any
		_ = json.Unmarshal(data, &raw)
		if len(raw) != len(m) {
			t.Fatalf("inconsistent map sizes")
		}
	})
}

func TestCheckNamesRefusesInvalidUTF8(t *testing.T) {
	for _, body := range []string{"{\"id\":\"al\xffice\"}", "{\"i\xc3\":1}", "\xef\xbb\xbf\xfe{}"} {
		if err := CheckNames([]byte(body)); !errors.Is(err, ErrInvalidUTF8) {
			t.Errorf("CheckNames(%q) = %v, want ErrInvalidUTF8", body, err)
		}
	}
	if err := CheckNames([]byte(`{"id":"alïce ✓"}`)); err != nil {
		t.Errorf("valid UTF-8 refused: %v", err)
	}
}
