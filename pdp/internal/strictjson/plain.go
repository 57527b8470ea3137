package strictjson

import (
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// maxPlainNames bounds the members of one object the fast check compares
// pairwise; a larger object goes to the tokenizer.
const maxPlainNames = 32

// plainNamesUnique reports, for valid JSON data, that no object names a
// member twice, when it can tell without a tokenizer: every name is ASCII
// without escapes (where encoding/json's case folding is ASCII's) and no
// object has more than maxPlainNames members. false means "not shown":
// duplicates, or a name or object it leaves to checkNames. It allocates
// nothing for the usual few levels and members.
func plainNamesUnique(data []byte) bool {
	var (
		nameBuf  [64][]byte
		startBuf [16]int
		names    = nameBuf[:0]  // the names of the objects open now
		starts   = startBuf[:0] // per open container: its first name in names, -1 for an array
		isName   bool           // the next string is a member name
	)
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			starts, isName = append(starts, len(names)), true
		case '[':
			starts, isName = append(starts, -1), false
		case '}', ']':
			if s := starts[len(starts)-1]; s >= 0 {
				names = names[:s]
			}
			starts, isName = starts[:len(starts)-1], false
		case ',':
			isName = starts[len(starts)-1] >= 0
		case '"':
			j, plain := i+1, true
			for ; data[j] != '"'; j++ {
				switch c := data[j]; {
				case c == '\\':
					plain = false
					j++
				case c >= 0x80:
					plain = false
				}
			}
			if isName {
				if !plain {
					return false
				}
				name, s := data[i+1:j], starts[len(starts)-1]
				if len(names)-s >= maxPlainNames {
					return false
				}
				for _, n := range names[s:] {
					if asciiEqualFold(n, name) {
						return false
					}
				}
				names, isName = append(names, name), false
			}
			i = j
		}
	}
	return true
}

// asciiEqualFold compares two ASCII names ignoring ASCII case.
func asciiEqualFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// ErrSyntax is returned by CheckValidNames for data that is not JSON.
var ErrSyntax = errors.New("not valid JSON")

// CheckValidNames is CheckNames for data that must also be valid JSON
// (ErrSyntax otherwise), checked in the same pass over the common case.
func CheckValidNames(data []byte) error {
	if !utf8.Valid(data) {
		return ErrInvalidUTF8
	}
	if !json.Valid(data) {
		return ErrSyntax
	}
	if plainNamesUnique(data) {
		return nil
	}
	return checkNames(data)
}
