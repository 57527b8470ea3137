package trail

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// This file holds the one JSON walk that Redact and Reveal share: a lexer
// that copies JSON compacted from in to out, and a walker that runs the
// array and object loops and lets a visitor step in at every value and
// object member.

// lexer reads JSON from in and writes it compacted to out.
type lexer struct {
	in    []byte
	i     int
	out   []byte
	depth int
	max   int
}

func (l *lexer) errf(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrBadBody, l.i, fmt.Sprintf(format, args...))
}

func (l *lexer) ws() {
	for l.i < len(l.in) {
		switch l.in[l.i] {
		case ' ', '\t', '\n', '\r':
			l.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte (0 at the end).
func (l *lexer) peek() byte {
	l.ws()
	if l.i < len(l.in) {
		return l.in[l.i]
	}
	return 0
}

func (l *lexer) expect(c byte) error {
	if l.peek() != c {
		if l.i == len(l.in) {
			return l.errf("unexpected end, want %q", c)
		}
		return l.errf("unexpected %q, want %q", l.in[l.i], c)
	}
	l.i++
	return nil
}

func (l *lexer) enter() error {
	if l.depth++; l.depth > l.max {
		return l.errf("nested deeper than %d", l.max)
	}
	return nil
}

// str reads the string at l.i and returns it as written, quotes included;
// esc tells whether it has escapes.
func (l *lexer) str() (raw []byte, esc bool, err error) {
	if l.peek() != '"' {
		return nil, false, l.errf("want a string")
	}
	in, start := l.in, l.i
	for i := start + 1; i < len(in); {
		switch c := in[i]; {
		case c == '"':
			l.i = i + 1
			return in[start:l.i], esc, nil
		case c == '\\':
			esc = true
			l.i = i
			if i+1 >= len(in) {
				return nil, false, l.errf("unterminated string")
			}
			switch in[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(in) || !isHex4(in[i+2:i+6]) {
					return nil, false, l.errf("bad \\u escape")
				}
				i += 6
			default:
				return nil, false, l.errf("bad escape")
			}
		case c < 0x20:
			l.i = i
			return nil, false, l.errf("control character in string")
		default:
			i++
		}
	}
	l.i = len(in)
	return nil, false, l.errf("unterminated string")
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// key is the decoded text of a string read by str.
func key(raw []byte, esc bool) string {
	if !esc {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s) // raw is a valid JSON string
	return s
}

// scalar copies the number, string or literal at l.i to out.
func (l *lexer) scalar() error {
	start := l.i
	switch c := l.in[l.i]; {
	case c == '"':
		raw, _, err := l.str()
		if err != nil {
			return err
		}
		l.out = append(l.out, raw...)
		return nil
	case c == 't' || c == 'f' || c == 'n':
		for _, w := range [...]string{"true", "false", "null"} {
			if bytes.HasPrefix(l.in[l.i:], []byte(w)) {
				l.i += len(w)
				l.out = append(l.out, w...)
				return nil
			}
		}
	case c == '-' || '0' <= c && c <= '9':
		if c == '-' {
			l.i++
		}
		switch {
		case l.i < len(l.in) && l.in[l.i] == '0':
			l.i++ // no leading zeros: "01" is 0 followed by junk
		case l.digits() == 0:
			return l.errf("bad number")
		}
		if l.i < len(l.in) && l.in[l.i] == '.' {
			l.i++
			if l.digits() == 0 {
				return l.errf("bad number")
			}
		}
		if l.i < len(l.in) && (l.in[l.i] == 'e' || l.in[l.i] == 'E') {
			l.i++
			if l.i < len(l.in) && (l.in[l.i] == '+' || l.in[l.i] == '-') {
				l.i++
			}
			if l.digits() == 0 {
				return l.errf("bad number")
			}
		}
		l.out = append(l.out, l.in[start:l.i]...)
		return nil
	}
	return l.errf("unexpected %q", l.in[l.i])
}

// digits skips a run of digits and returns its length.
func (l *lexer) digits() int {
	n := 0
	for l.i < len(l.in) && '0' <= l.in[l.i] && l.in[l.i] <= '9' {
		l.i++
		n++
	}
	return n
}

// frame is where a value sits, as a visitor sees it. The walker only
// passes frames on; their meaning is the visitor's.
type frame struct {
	d       int    // depth below the top of the body
	mask    uint64 // Redact: the rules whose path matches so far
	raw     bool   // Redact: copying a value that is about to be redacted
	literal bool   // Reveal: the object a literal marker wraps
}

// member is an object key as written (quotes included); esc tells whether
// it has escapes.
type member struct {
	raw []byte
	esc bool
}

// bytes is the key's text, decoded only if it has escapes.
func (m member) bytes() []byte {
	if !m.esc {
		return m.raw[1 : len(m.raw)-1]
	}
	return []byte(key(m.raw, m.esc))
}

// text is the key's decoded text.
func (m member) text() string { return key(m.raw, m.esc) }

// isMarker reports whether the key is "$redacted".
func (m member) isMarker() bool {
	if !m.esc {
		return string(m.raw) == `"`+markerKey+`"`
	}
	return m.text() == markerKey
}

// visitor is what a walk does beyond copying.
type visitor interface {
	// value is called at each value in frame f, before it is copied; it
	// returns true when it has consumed the value and written what stands
	// for it.
	value(w *walker, f frame) (bool, error)
	// member is called with each key of an object in frame f, first for
	// the first key, before the key is copied; start is where the object
	// begins in out. It returns the frame of the member's value, or true
	// when it has consumed the rest of the object, closing brace included
	// (what the object wrote so far is out[start:]).
	member(w *walker, f frame, k member, first bool, start int) (frame, bool, error)
	// element returns the frame of element n of an array in frame f.
	element(f frame, n int) frame
	// closed is called once an object in frame f has been copied to
	// out[start:]; marked tells whether one of its keys was "$redacted".
	closed(w *walker, f frame, start int, marked bool)
}

// walker copies one JSON value, compacted, calling its visitor.
type walker struct {
	lexer
	v visitor
}

// top walks the whole input: one value, then nothing but white space.
func (w *walker) top(f frame) error {
	if err := w.value(f); err != nil {
		return err
	}
	if w.ws(); w.i != len(w.in) {
		return w.errf("data after the value")
	}
	return nil
}

// value walks the value at w.i.
func (w *walker) value(f frame) error {
	c := w.peek()
	if w.i == len(w.in) {
		return w.errf("unexpected end")
	}
	if done, err := w.v.value(w, f); done || err != nil {
		return err
	}
	switch c {
	case '{':
		return w.object(f)
	case '[':
		return w.array(f)
	}
	return w.scalar()
}

// object walks the object at w.i.
func (w *walker) object(f frame) error {
	if err := w.enter(); err != nil {
		return err
	}
	start := len(w.out)
	w.i++
	w.out = append(w.out, '{')
	marked := false
	if w.peek() == '}' {
		w.i++
	} else {
		for first := true; ; first = false {
			raw, esc, err := w.str()
			if err != nil {
				return err
			}
			k := member{raw, esc}
			child, done, err := w.v.member(w, f, k, first, start)
			if err != nil {
				return err
			}
			if done {
				w.depth--
				return nil
			}
			marked = marked || k.isMarker()
			w.out = append(w.out, raw...)
			if err := w.expect(':'); err != nil {
				return err
			}
			w.out = append(w.out, ':')
			if err := w.value(child); err != nil {
				return err
			}
			if w.peek() != ',' {
				break
			}
			w.i++
			w.out = append(w.out, ',')
		}
		if err := w.expect('}'); err != nil {
			return err
		}
	}
	w.out = append(w.out, '}')
	w.v.closed(w, f, start, marked)
	w.depth--
	return nil
}

// array walks the array at w.i.
func (w *walker) array(f frame) error {
	if err := w.enter(); err != nil {
		return err
	}
	w.i++
	w.out = append(w.out, '[')
	if w.peek() == ']' {
		w.i++
	} else {
		for n := 0; ; n++ {
			if err := w.value(w.v.element(f, n)); err != nil {
				return err
			}
			if w.peek() != ',' {
				break
			}
			w.i++
			w.out = append(w.out, ',')
		}
		if err := w.expect(']'); err != nil {
			return err
		}
	}
	w.out = append(w.out, ']')
	w.depth--
	return nil
}

// copier is the visitor that only copies.
type copier struct{}

func (copier) value(*walker, frame) (bool, error) { return false, nil }
func (copier) member(_ *walker, f frame, _ member, _ bool, _ int) (frame, bool, error) {
	return frame{d: f.d + 1}, false, nil
}
func (copier) element(f frame, _ int) frame     { return frame{d: f.d + 1} }
func (copier) closed(*walker, frame, int, bool) {}
