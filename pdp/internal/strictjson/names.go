// Package strictjson holds the checks every JSON body decoder of the PDP
// makes beyond encoding/json: no object may name a member twice.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// ErrDuplicateName is wrapped by CheckNames when an object names a member
// twice.
var ErrDuplicateName = errors.New("duplicate member name")

// ErrInvalidUTF8 is returned by CheckNames for a body that is not UTF-8
// (RFC 8259 requires it): encoding/json would turn the bad bytes into
// U+FFFD, so two different ids could reach the engine as one.
var ErrInvalidUTF8 = errors.New("the body is not valid UTF-8 text")

// CheckNames reports an object in data that names a member twice, exactly
// or in another case: encoding/json keeps the last of two equal names and
// matches struct fields case-insensitively, so {"id":"mallory","ID":"alice"}
// would reach a struct as "alice" while a proxy or log reading the first
// name saw "mallory". The error wraps ErrDuplicateName and says where
// ("duplicate member name \"id\" in /subject"). Syntax errors are not its
// business: it returns nil for them and lets the decoder report them.
//
// It also refuses a body that is not valid UTF-8 (ErrInvalidUTF8).
func CheckNames(data []byte) error {
	if !utf8.Valid(data) {
		return ErrInvalidUTF8
	}
	if json.Valid(data) && plainNamesUnique(data) {
		return nil // what checkNames would say, found without a tokenizer
	}
	return checkNames(data)
}

// checkNames is CheckNames after the UTF-8 check, with a JSON tokenizer.
func checkNames(data []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(data),
		jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	type frame struct {
		object bool
		n      int // tokens read at this level (names and values)
		names  map[string]bool
	}
	var stack []frame
	for {
		tok, err := dec.ReadToken()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return nil // malformed: the decoder says how
		}
		kind := tok.Kind()
		if kind == '}' || kind == ']' {
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.object && top.n%2 == 0 {
				name := tok.String()
				key := foldName(name)
				if top.names[key] {
					where := string(dec.StackPointer())
					if i := strings.LastIndexByte(where, '/'); i >= 0 {
						where = where[:i]
					}
					if where == "" {
						where = "the top-level object"
					}
					return fmt.Errorf("%w %q in %s", ErrDuplicateName, name, where)
				}
				if top.names == nil {
					top.names = make(map[string]bool)
				}
				top.names[key] = true
			}
			top.n++
		}
		if kind == '{' || kind == '[' {
			stack = append(stack, frame{object: kind == '{'})
		}
	}
}

// foldName maps a name to the same key for every spelling encoding/json
// treats as equal when it matches struct fields (Unicode simple case
// folding: "ID", "Id", "id" and "\u212ad" with a Kelvin sign alike).
func foldName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteByte(s[i])
			i++
			continue
		}
		b.WriteRune(minFold(r))
		i += size
	}
	return b.String()
}

// minFold is the smallest rune of r's case-folding orbit.
func minFold(r rune) rune {
	lowest := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		lowest = min(lowest, f)
	}
	return lowest
}
