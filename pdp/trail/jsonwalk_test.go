package trail

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestWalkerCopies: the walker with a visitor that only copies compacts a
// body as encoding/json does, and refuses what encoding/json refuses.
func TestWalkerCopies(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"scalar", ` 12.5e-3 `, true},
		{"nested", "{ \"a\" : [ 1 , {\"b\":null} , [] , {} ] ,\n\"c\\u0041\":\"x\\\"y\" }", true},
		{"marker keys are copied", `{"x":1,"$redacted":"hmac-sha256"}`, true},
		{"trailing data", `{} {}`, false},
		{"trailing comma", `[1,]`, false},
		{"leading zero", `01`, false},
		{"bad escape", `"\x"`, false},
		{"unterminated", `{"a":`, false},
		{"control character", "\"a\tb\"", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := walker{lexer: lexer{in: []byte(tc.in), max: maxDepthIn}, v: copier{}}
			err := w.top(frame{})
			var want bytes.Buffer
			werr := json.Compact(&want, []byte(tc.in))
			if tc.ok != (err == nil) || tc.ok != (werr == nil) {
				t.Fatalf("walk: %v, encoding/json: %v, want ok %v", err, werr, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrBadBody) {
					t.Errorf("error %v does not wrap ErrBadBody", err)
				}
				return
			}
			if string(w.out) != want.String() {
				t.Errorf("walk %s, encoding/json %s", w.out, want.Bytes())
			}
		})
	}
}

// TestWalkerDepth: nesting beyond the limit is refused, at the limit not.
func TestWalkerDepth(t *testing.T) {
	for _, depth := range []int{maxDepthIn, maxDepthIn + 1} {
		in := strings.Repeat("[", depth) + strings.Repeat("]", depth)
		w := walker{lexer: lexer{in: []byte(in), max: maxDepthIn}, v: copier{}}
		if err := w.top(frame{}); (err == nil) != (depth <= maxDepthIn) {
			t.Errorf("depth %d: %v", depth, err)
		}
	}
}
