// Package jsonenc writes JSON by hand, without reflection, byte for byte
// as encoding/json's Marshal writes the same values (compact, strings
// HTML-escaped, map keys sorted): the encoders of the decision trail's
// records and the sidecar's answers are built from it, so that a record's
// bytes, and so its hash, do not depend on which encoder wrote it.
package jsonenc

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ciampdp/pdp/pdp"
)

// Request writes an AuthZEN request as encoding/json writes pdp.Request.
func Request(dst []byte, r *pdp.Request) ([]byte, error) {
	var err error
	dst = append(dst, `{"subject":`...)
	if dst, err = Entity(dst, &r.Subject); err != nil {
		return dst, err
	}
	dst = append(dst, `,"action":{"name":`...)
	dst = String(dst, r.Action.Name)
	if len(r.Action.Properties) > 0 {
		dst = append(dst, `,"properties":`...)
		if dst, err = AnyMap(dst, r.Action.Properties); err != nil {
			return dst, err
		}
	}
	dst = append(dst, `},"resource":`...)
	if dst, err = Entity(dst, &r.Resource); err != nil {
		return dst, err
	}
	if len(r.Context) > 0 {
		dst = append(dst, `,"context":`...)
		if dst, err = AnyMap(dst, r.Context); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// Entity writes an AuthZEN subject or resource as encoding/json writes pdp.Entity.
func Entity(dst []byte, e *pdp.Entity) ([]byte, error) {
	var err error
	dst = append(dst, `{"type":`...)
	dst = String(dst, e.Type)
	dst = append(dst, `,"id":`...)
	dst = String(dst, e.ID)
	if len(e.Properties) > 0 {
		dst = append(dst, `,"properties":`...)
		if dst, err = AnyMap(dst, e.Properties); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// AnyMap writes a JSON object with sorted keys, as encoding/json
// writes a map[string]any decoded from a request (json.Number, string,
// bool, nil, []any, map[string]any); other types go to encoding/json.
func AnyMap(dst []byte, m map[string]any) ([]byte, error) {
	if m == nil {
		return append(dst, "null"...), nil
	}
	var small [16]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = String(dst, k)
		dst = append(dst, ':')
		if dst, err = Any(dst, m[k]); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// Any writes v as encoding/json writes a value decoded from JSON.
func Any(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return String(dst, v), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case json.Number:
		if v == "" {
			return append(dst, '0'), nil
		}
		if !isNumber(string(v)) {
			return dst, fmt.Errorf("json: invalid number literal %q", string(v))
		}
		return append(dst, v...), nil
	case float64:
		return float(dst, v)
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case map[string]any:
		return AnyMap(dst, v)
	case []any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		var err error
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = Any(dst, e); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return dst, err
		}
		return append(dst, b...), nil
	}
}

// float writes f as encoding/json does (ES6 number formatting).
func float(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, fmt.Errorf("json: unsupported value: %s", strconv.FormatFloat(f, 'g', -1, 64))
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' { // clean up e-09 to e-9
		n := len(dst) - start
		if n >= 4 && dst[len(dst)-4] == 'e' && dst[len(dst)-3] == '-' && dst[len(dst)-2] == '0' {
			dst[len(dst)-2] = dst[len(dst)-1]
			dst = dst[:len(dst)-1]
		}
	}
	return dst, nil
}

// isNumber reports whether s is a JSON number literal.
func isNumber(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' {
		s = s[1:]
		if s == "" {
			return false
		}
	}
	switch {
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		s = s[1:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	default:
		return false
	}
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		s = s[2:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s[0] == '+' || s[0] == '-' {
			s = s[1:]
			if s == "" {
				return false
			}
		}
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	return s == ""
}

// Strings writes a list of strings (null when nil).
func Strings(dst []byte, ss []string) []byte {
	if ss == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = String(dst, s)
	}
	return append(dst, ']')
}

// Time writes t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, in t's own zone).
func Time(dst []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y >= 10000 {
		return dst, fmt.Errorf("json: error calling MarshalJSON for type time.Time: year %d outside of range [0,9999]", y)
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), nil
}

const hexDigits = "0123456789abcdef"

// safeASCII[b] is true for the ASCII bytes encoding/json copies as they
// are in a string with HTML escaping on.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// String writes s as a JSON string exactly as encoding/json does:
// \" \\ \b \f \n \r \t, other control bytes and < > & as \u00XX, U+2028
// and U+2029 escaped, invalid UTF-8 as \ufffd.
func String(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if safeASCII[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
