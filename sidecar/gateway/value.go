package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A value spec says where a route takes a value from. Written as a string
// in the config:
//
//	{id}                  the path variable id
//	header:X-Amount       the first value of a request header (absent: omitted)
//	query:currency        the first value of a query parameter (absent: omitted)
//	claim:acr             a claim of the verified token (absent: omitted)
//	value:header:x        the literal "header:x" (for literals that look like a source)
//	account_servicing     any other string is a literal
//
// Any spec may end in "|string" (the default), "|number" or "|bool" to
// convert the value; a value that does not convert makes the request
// invalid (denied with invalid_input).
type valueSpec struct {
	src  valueSource
	name string // variable, header, parameter or claim name; the literal itself for srcLiteral
	typ  valueType
	raw  string
}

type valueSource int

const (
	srcLiteral valueSource = iota
	srcPath
	srcHeader
	srcQuery
	srcClaim
)

type valueType int

const (
	typString valueType = iota
	typNumber
	typBool
)

// parseValue parses a value spec.
func parseValue(s string) (valueSpec, error) {
	v := valueSpec{raw: s}
	if i := strings.LastIndexByte(s, '|'); i >= 0 {
		switch s[i+1:] {
		case "string":
			s = s[:i]
		case "number":
			v.typ, s = typNumber, s[:i]
		case "bool":
			v.typ, s = typBool, s[:i]
		}
	}
	if lit, ok := strings.CutPrefix(s, "value:"); ok {
		v.src, v.name = srcLiteral, lit
		return v, v.checkLiteral()
	}
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		name := s[1 : len(s)-1]
		if !isIdent(name) {
			return v, fmt.Errorf("%q: path variable name must be an identifier", v.raw)
		}
		v.src, v.name = srcPath, name
		return v, nil
	}
	for _, p := range []struct {
		prefix string
		src    valueSource
	}{{"header:", srcHeader}, {"query:", srcQuery}, {"claim:", srcClaim}} {
		prefix, src := p.prefix, p.src
		if name, ok := strings.CutPrefix(s, prefix); ok {
			if name == "" {
				return v, fmt.Errorf("%q: %s needs a name", v.raw, strings.TrimSuffix(prefix, ":"))
			}
			if src == srcHeader && !validHeaderName(name) {
				return v, fmt.Errorf("%q: %q is not a valid header name", v.raw, name)
			}
			v.src, v.name = src, name
			return v, nil
		}
	}
	if strings.ContainsAny(s, "{}") {
		return v, fmt.Errorf("%q: a path variable must be the whole value, like {id}", v.raw)
	}
	v.src, v.name = srcLiteral, s
	return v, v.checkLiteral()
}

// checkLiteral converts a typed literal once, so that a bad one is a
// config error rather than a deny on every request.
func (v valueSpec) checkLiteral() error {
	if _, err := v.convert(v.name); err != nil {
		return fmt.Errorf("%q: %w", v.raw, err)
	}
	return nil
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return s != ""
}

// valueInput is what value specs read from one request.
type valueInput struct {
	vars   map[string]string
	header http.Header
	query  url.Values
	claims map[string]any
}

// errValue marks a request value that does not convert to its declared type.
var errValue = errors.New("invalid request value")

// resolve returns the value and whether it is present.
func (v valueSpec) resolve(in *valueInput) (any, bool, error) {
	var s string
	switch v.src {
	case srcLiteral:
		s = v.name
	case srcPath:
		var ok bool
		if s, ok = in.vars[v.name]; !ok {
			return nil, false, nil
		}
	case srcHeader:
		vs := in.header.Values(v.name)
		if len(vs) == 0 {
			return nil, false, nil
		}
		if len(vs) > 1 {
			return nil, false, fmt.Errorf("%w: header %s is given %d times", errAmbiguous, v.name, len(vs))
		}
		s = vs[0]
	case srcQuery:
		var (
			ok  bool
			err error
		)
		if s, ok, err = queryValue(in.query, v.name); err != nil || !ok {
			return nil, false, err
		}
	case srcClaim:
		c, ok := in.claims[v.name]
		if !ok || c == nil {
			return nil, false, nil
		}
		return v.convertClaim(c)
	}
	if !utf8.ValidString(s) || hasControl(s) {
		// JSON would turn invalid bytes into U+FFFD: the PDP would judge
		// another value than the upstream reads.
		return nil, false, fmt.Errorf("%w: %s is not UTF-8 text", errValue, v.what())
	}
	out, err := v.convert(s)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// convert turns a string into the declared type.
func (v valueSpec) convert(s string) (any, error) {
	switch v.typ {
	case typNumber:
		// Not trimmed: the number the PDP judges is the text the
		// upstream reads (" 900" is refused, not read as 900).
		if !isJSONNumber(s) {
			return nil, fmt.Errorf("%w: %s must be a number", errValue, v.what())
		}
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return nil, fmt.Errorf("%w: %s is out of range", errValue, v.what())
		}
		return json.Number(s), nil
	case typBool:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("%w: %s must be true or false", errValue, v.what())
	}
	return s, nil
}

// convertClaim converts a claim, which is already JSON-typed.
func (v valueSpec) convertClaim(c any) (any, bool, error) {
	switch x := c.(type) {
	case string:
		out, err := v.convert(x)
		return out, err == nil, err
	case float64:
		if v.typ == typNumber {
			return json.Number(strconv.FormatFloat(x, 'f', -1, 64)), true, nil
		}
		if v.typ == typString {
			return strconv.FormatFloat(x, 'f', -1, 64), true, nil
		}
	case json.Number:
		if v.typ == typNumber {
			return x, true, nil
		}
		if v.typ == typString {
			return x.String(), true, nil
		}
	case bool:
		if v.typ == typBool {
			return x, true, nil
		}
		if v.typ == typString {
			return strconv.FormatBool(x), true, nil
		}
	default:
		if v.typ == typString {
			// Arrays and objects (amr, groups) pass through as JSON values.
			return x, true, nil
		}
	}
	return nil, false, fmt.Errorf("%w: %s has the wrong type", errValue, v.what())
}

// what names the value's source for messages that may reach a client.
func (v valueSpec) what() string {
	switch v.src {
	case srcPath:
		return "path variable " + v.name
	case srcHeader:
		return "header " + v.name
	case srcQuery:
		return "query parameter " + v.name
	case srcClaim:
		return "claim " + v.name
	}
	return "literal"
}

// isJSONNumber reports whether s is a number in JSON syntax, so that it
// can be sent as json.Number unchanged (no "0x1p3", "Inf", "+1", "1.").
func isJSONNumber(s string) bool {
	if s == "" {
		return false
	}
	return json.Valid([]byte(s)) && (s[0] == '-' || s[0] >= '0' && s[0] <= '9')
}
