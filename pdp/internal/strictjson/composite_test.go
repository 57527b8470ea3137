package strictjson

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCompositeEnd(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{`{}`, 2},
		{`[]`, 2},
		{`{"a":[1,{"b":"}"}]} tail`, 19},
		{`["\"]",1],`, 9},
		{`{"a":"\\"}x`, 10},
		{`{"a":1`, -1},
		{`"str"`, -1},
		{``, -1},
		{`1`, -1},
	} {
		if got := CompositeEnd([]byte(tc.in)); got != tc.want {
			t.Errorf("CompositeEnd(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// FuzzCompositeEnd: on valid JSON an object or array ends where
// encoding/json says it does.
func FuzzCompositeEnd(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":"}"}]}`, `["\"]",1]`, `{}`, `[[],{}]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := CompositeEnd([]byte(s))
		if !json.Valid([]byte(s)) || len(s) == 0 || s[0] != '{' && s[0] != '[' {
			return
		}
		if want := len(strings.TrimRight(s, " \t\r\n")); n != want {
			t.Fatalf("CompositeEnd(%q) = %d, want %d", s, n, want)
		}
	})
}
