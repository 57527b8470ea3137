package ingest

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/ciampdp/pdp/pdp/internal/strictjson"
)

// decodeSidecarRecord reads the checked part of a sidecar's record into p
// as json.Unmarshal does. A record in the form sidecars write (members
// named exactly, plain strings without escapes, no nulls where a value is
// read) is read by scanSidecarRecord without reflection; anything else by
// json.Unmarshal (FuzzScanSidecarRecord holds the two to one result).
func decodeSidecarRecord(body []byte, p *sidecarRecord) error {
	if json.Valid(body) {
		var fast sidecarRecord
		if scanSidecarRecord(body, &fast) {
			*p = fast
			return nil
		}
	}
	return json.Unmarshal(body, p)
}

// The members of sidecarRecord, and of its request and action.
var (
	recordNames  = []string{"decision_id", "time", "sidecar", "decision", "source", "cached_from", "degraded", "request"}
	requestNames = []string{"action"}
	actionNames  = []string{"name"}
)

// scanSidecarRecord reads body, valid JSON, into p; false when it cannot
// be sure to read it as json.Unmarshal would.
func scanSidecarRecord(body []byte, p *sidecarRecord) bool {
	rest, ok := members(body, recordNames, func(name string, v []byte) bool {
		switch name {
		case "decision_id":
			return plainString(v, &p.DecisionID)
		case "sidecar":
			return plainString(v, &p.Sidecar)
		case "source":
			return plainString(v, &p.Source)
		case "cached_from":
			return plainString(v, &p.CachedFrom)
		case "time":
			var s string
			return plainString(v, &s) && p.Time.UnmarshalText([]byte(s)) == nil
		case "decision":
			var b bool
			if !boolean(v, &b) {
				return false
			}
			p.Decision = &b
			return true
		case "degraded":
			return boolean(v, &p.Degraded)
		case "request":
			rest, ok := members(v, requestNames, func(_ string, action []byte) bool {
				rest, ok := members(action, actionNames, func(_ string, n []byte) bool {
					return plainString(n, &p.Request.Action.Name)
				})
				return ok && len(rest) == 0
			})
			return ok && len(rest) == 0
		}
		return true
	})
	return ok && len(rest) == 0
}

// members walks the object data starts with, calling fn with the value of
// each member named in known (exactly), skipping the others, and returns
// what follows the object. It gives up (false) on a name in another case
// than one of known (json.Unmarshal matches it), on a name with escapes,
// and when fn does.
func members(data []byte, known []string, fn func(name string, value []byte) bool) ([]byte, bool) {
	if len(data) == 0 || data[0] != '{' {
		return data, false
	}
	p := skipSpace(data[1:])
	if len(p) > 0 && p[0] == '}' {
		return p[1:], true
	}
	for {
		var name []byte
		name, p = cutString(p)
		if name == nil || !plainASCII(name) {
			return data, false
		}
		p = skipSpace(p)
		if len(p) == 0 || p[0] != ':' {
			return data, false
		}
		p = skipSpace(p[1:])
		n := valueLen(p)
		if n <= 0 {
			return data, false
		}
		for _, k := range known {
			if len(k) == len(name) && asciiEqualFold(k, name) {
				if k != string(name) || !fn(k, p[:n]) {
					return data, false
				}
			}
		}
		p = skipSpace(p[n:])
		if len(p) == 0 {
			return data, false
		}
		switch p[0] {
		case ',':
			p = skipSpace(p[1:])
		case '}':
			return p[1:], true
		default:
			return data, false
		}
	}
}

// plainString sets *dst to the JSON string v when it has no escapes and
// is valid UTF-8 (json.Unmarshal replaces bad bytes).
func plainString(v []byte, dst *string) bool {
	s, rest := cutString(v)
	if s == nil || len(rest) != 0 || bytes.IndexByte(s, '\\') >= 0 || !utf8.Valid(s) {
		return false
	}
	*dst = string(s)
	return true
}

// boolean sets *dst to the JSON literal v, true or false.
func boolean(v []byte, dst *bool) bool {
	switch string(v) {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		return false
	}
	return true
}

// cutString returns the content of the JSON string p starts with (nil if
// it does not) and what follows it.
func cutString(p []byte) ([]byte, []byte) {
	if len(p) == 0 || p[0] != '"' {
		return nil, p
	}
	for i := 1; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '"':
			return p[1:i], p[i+1:]
		}
	}
	return nil, p
}

// valueLen is the length of the JSON value p starts with (valid JSON
// assumed), 0 if it cannot tell.
func valueLen(p []byte) int {
	if len(p) == 0 {
		return 0
	}
	switch p[0] {
	case '"':
		_, rest := cutString(p)
		return len(p) - len(rest)
	case '{', '[':
		return max(strictjson.CompositeEnd(p), 0)
	}
	i := 0
	for i < len(p) && p[i] != ',' && p[i] != '}' && p[i] != ']' && p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n' {
		i++
	}
	return i
}

// plainASCII reports a name of ASCII without escapes: json.Unmarshal's
// case-insensitive match is then ASCII's.
func plainASCII(name []byte) bool {
	for _, c := range name {
		if c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}

// asciiEqualFold compares an ASCII name with a lower-case known one.
func asciiEqualFold(known string, name []byte) bool {
	for i := range name {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != known[i] {
			return false
		}
	}
	return true
}

func skipSpace(p []byte) []byte {
	for len(p) > 0 && (p[0] == ' ' || p[0] == '\t' || p[0] == '\n' || p[0] == '\r') {
		p = p[1:]
	}
	return p
}
