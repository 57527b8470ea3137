package strictjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestPlainNamesUnique: the tokenizer-free check shows uniqueness only
// where there is, and leaves escapes, non-ASCII names and large objects
// to the tokenizer.
func TestPlainNamesUnique(t *testing.T) {
	many := make([]string, maxPlainNames+1)
	for i := range many {
		many[i] = fmt.Sprintf(`"m%d":%d`, i, i)
	}
	for _, tc := range []struct {
		data string
		want bool
	}{
		{`{"a":1,"b":{"a":2,"c":[{"a":3},{"a":4}]},"c":"a"}`, true},
		{`{"s":"\"a\":1,\"a\":2","t":"}{"}`, true},
		{`[{"a":1},{"a":1}]`, true},
		{`{}`, true},
		{`"a"`, true},
		{`{"a":1,"a":2}`, false},
		{`{"id":1,"ID":2}`, false},
		{`{"x":{"a":1,"b":{"c":1},"A":2}}`, false},
		{`{"a\u0062":1}`, false},
		{`{"é":1}`, false},
		{`{` + strings.Join(many, ",") + `}`, false},
	} {
		if !json.Valid([]byte(tc.data)) {
			t.Fatalf("%s: not valid JSON", tc.data)
		}
		if got := plainNamesUnique([]byte(tc.data)); got != tc.want {
			t.Errorf("plainNamesUnique(%s) = %v, want %v", tc.data, got, tc.want)
		}
		if tc.want && checkNames([]byte(tc.data)) != nil {
			t.Errorf("%s: the tokenizer finds a duplicate", tc.data)
		}
	}
}

// FuzzPlainNamesUnique: whenever the fast check shows no name twice, the
// tokenizer finds none either (so CheckNames answers as before).
func FuzzPlainNamesUnique(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":{"a":2,"c":[{"a":3},{"A":4}]}}`,
		`{"a":1,"A":2}`,
		`{"k":1,"\u212a":2}`,
		`{"s":"\\","t":"\""}`,
		`[1,"a",{"b":null,"c":true}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) || !plainNamesUnique(data) {
			return
		}
		if err := checkNames(data); err != nil {
			t.Fatalf("%q: fast check says unique, tokenizer: %v", data, err)
		}
	})
}

// TestCheckValidNames: CheckNames, and a syntax error is one.
func TestCheckValidNames(t *testing.T) {
	for _, tc := range []struct {
		data string
		want error
	}{
		{`{"a":1}`, nil},
		{`{"a":1,"A":2}`, ErrDuplicateName},
		{`{"a":}`, ErrSyntax},
		{`{"a":1,"a":2`, ErrSyntax},
		{"{\"a\":\"\xff\"}", ErrInvalidUTF8},
	} {
		if err := CheckValidNames([]byte(tc.data)); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("CheckValidNames(%q) = %v, want %v", tc.data, err, tc.want)
		}
	}
}
