package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// ErrTemplate is wrapped by every error of ParseTemplate.
var ErrTemplate = errors.New("invalid path template")

// ErrPath is wrapped by SplitPath for a request path that is not in
// canonical form. Such a path is denied rather than matched: the upstream
// may read it differently from the gateway (dot segments, encoded slashes).
var ErrPath = errors.New("non-canonical request path")

// Template is a parsed path template such as "/accounts/{id}/payments".
// Each segment is a literal, a variable "{name}" standing for one whole
// segment, or, as the last segment only, "{name...}" standing for the rest
// of the path (one or more segments, possibly a single empty one after a
// trailing slash). Literals are compared with the percent-decoded request
// segments, case-sensitively.
type Template struct {
	raw  string
	segs []tmplSeg
}

type tmplSeg struct {
	lit  string // the literal, when name is empty
	name string // the variable name
	rest bool   // "{name...}": the rest of the path
}

// maxTemplateSegments bounds a template (and so the work of one match).
const maxTemplateSegments = 64

// ParseTemplate parses a path template. It must start with "/"; "/" alone
// is the root. Segments must not be empty except the last (a trailing
// slash), must not be "." or "..", and a literal must not contain '{', '}'
// or '%' (write it unescaped). Variable names are Go-like identifiers,
// unique within the template.
func ParseTemplate(s string) (*Template, error) {
	if !strings.HasPrefix(s, "/") {
		return nil, fmt.Errorf("%q: %w: must start with '/'", s, ErrTemplate)
	}
	t := &Template{raw: s}
	if s == "/" {
		return t, nil
	}
	parts := strings.Split(s[1:], "/")
	if len(parts) > maxTemplateSegments {
		return nil, fmt.Errorf("%q: %w: more than %d segments", s, ErrTemplate, maxTemplateSegments)
	}
	seen := map[string]bool{}
	for i, p := range parts {
		last := i == len(parts)-1
		seg, err := parseSegment(p, last)
		if err != nil {
			return nil, fmt.Errorf("%q: %w: segment %d: %s", s, ErrTemplate, i+1, err)
		}
		if seg.name != "" {
			if seen[seg.name] {
				return nil, fmt.Errorf("%q: %w: variable {%s} appears twice", s, ErrTemplate, seg.name)
			}
			seen[seg.name] = true
		}
		t.segs = append(t.segs, seg)
	}
	return t, nil
}

func parseSegment(p string, last bool) (tmplSeg, error) {
	if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
		name := p[1 : len(p)-1]
		rest := false
		if n, ok := strings.CutSuffix(name, "..."); ok {
			if !last {
				return tmplSeg{}, fmt.Errorf("{%s} must be the last segment", name)
			}
			name, rest = n, true
		}
		if !isIdent(name) {
			return tmplSeg{}, fmt.Errorf("variable name %q must be a letter or '_' followed by letters, digits or '_'", name)
		}
		return tmplSeg{name: name, rest: rest}, nil
	}
	switch {
	case p == "" && !last:
		return tmplSeg{}, errors.New("empty segment ('//')")
	case p == "." || p == "..":
		return tmplSeg{}, errors.New("dot segment")
	case strings.ContainsAny(p, "{}"):
		return tmplSeg{}, errors.New("a variable must be a whole segment, like {id}")
	case strings.Contains(p, "%"):
		return tmplSeg{}, errors.New("write literal segments unescaped (no '%')")
	case hasControl(p):
		return tmplSeg{}, errors.New("control character")
	case !utf8.ValidString(p):
		return tmplSeg{}, errors.New("not UTF-8")
	}
	return tmplSeg{lit: p}, nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// String returns the template as written.
func (t *Template) String() string { return t.raw }

// Vars lists the template's variable names in order.
func (t *Template) Vars() []string {
	var out []string
	for _, s := range t.segs {
		if s.name != "" {
			out = append(out, s.name)
		}
	}
	return out
}

// HasVar reports whether the template defines variable name.
func (t *Template) HasVar(name string) bool {
	for _, s := range t.segs {
		if s.name == name {
			return true
		}
	}
	return false
}

// Match matches decoded path segments (from SplitPath) and returns the
// variables' values. A "{name...}" variable holds its segments joined by "/".
func (t *Template) Match(segs []string) (map[string]string, bool) {
	var vars map[string]string
	set := func(k, v string) {
		if vars == nil {
			vars = make(map[string]string, len(t.segs))
		}
		vars[k] = v
	}
	for i, ts := range t.segs {
		if ts.rest {
			if i >= len(segs) {
				return nil, false
			}
			set(ts.name, strings.Join(segs[i:], "/"))
			return vars, true
		}
		if i >= len(segs) {
			return nil, false
		}
		if ts.name == "" {
			if segs[i] != ts.lit {
				return nil, false
			}
			continue
		}
		if segs[i] == "" {
			return nil, false // a variable never matches the empty segment of a trailing slash
		}
		set(ts.name, segs[i])
	}
	if len(segs) != len(t.segs) {
		return nil, false
	}
	return vars, true
}

// maxPathSegments bounds the request paths the gateway looks at.
const maxPathSegments = 256

// SplitPath splits an escaped request path (no query) into percent-decoded
// segments: "/" gives none, "/a/b" gives [a b], "/a/" gives [a ""]. A path
// that is not canonical wraps ErrPath: one that does not start with "/",
// has an empty segment other than the last ("//"), a "." or ".." segment
// (also percent-encoded), a bad escape, an encoded '/' or '\' or a raw '\',
// a raw ';' (path parameters, which servlet containers and others cut
// off) or '#' (a fragment, which the proxy passes on and the upstream may
// cut off or not), a control character, invalid UTF-8, or more than 256
// segments.
func SplitPath(escaped string) ([]string, error) {
	if !strings.HasPrefix(escaped, "/") {
		return nil, fmt.Errorf("%w: must start with '/'", ErrPath)
	}
	if escaped == "/" {
		return nil, nil
	}
	parts := strings.Split(escaped[1:], "/")
	if len(parts) > maxPathSegments {
		return nil, fmt.Errorf("%w: more than %d segments", ErrPath, maxPathSegments)
	}
	for i, p := range parts {
		if p == "" && i != len(parts)-1 {
			return nil, fmt.Errorf("%w: empty segment", ErrPath)
		}
		if strings.ContainsAny(p, "#;") {
			return nil, fmt.Errorf("%w: a fragment ('#') or path parameters (';')", ErrPath)
		}
		d, err := url.PathUnescape(p)
		if err != nil {
			return nil, fmt.Errorf("%w: bad escape", ErrPath)
		}
		switch {
		case d == "." || d == "..":
			return nil, fmt.Errorf("%w: dot segment", ErrPath)
		case strings.ContainsAny(d, `/\`):
			return nil, fmt.Errorf("%w: slash or backslash inside a segment", ErrPath)
		case hasControl(d):
			return nil, fmt.Errorf("%w: control character", ErrPath)
		case !utf8.ValidString(d):
			// JSON would turn every invalid byte into U+FFFD, making
			// distinct upstream resources one resource id.
			return nil, fmt.Errorf("%w: not UTF-8", ErrPath)
		}
		parts[i] = d
	}
	return parts, nil
}
