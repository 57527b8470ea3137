package audit

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Printable makes one line of an auditor's text output safe for a
// terminal: recorded ids and messages come from callers, and a control
// character in them (an escape sequence that moves the cursor, recolours
// or retitles the terminal, a carriage return that overwrites the line, a
// newline that forges another record) must not reach it raw. Control
// characters (C0, DEL, C1), bidirectional overrides, invalid UTF-8 and the
// backslash itself are written as Go-style escapes (\x1b, \u202e, \\), so
// that what is shown is unambiguous. JSON output needs none of this.
func Printable(line string) string {
	if !needsEscape(line) {
		return line
	}
	var b strings.Builder
	b.Grow(len(line) + 8)
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRuneInString(line[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, line[i])
		case r == '\\':
			b.WriteString(`\\`)
		case unsafeRune(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(line[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' || c >= 0x80 {
			// Non-ASCII is checked rune by rune below.
			if c >= 0x80 {
				for _, r := range s[i:] {
					if r == utf8.RuneError || r == '\\' || unsafeRune(r) {
						return true
					}
				}
				return false
			}
			return true
		}
	}
	return false
}

// unsafeRune: C0 and C1 controls, DEL, and the bidirectional formatting
// characters that reorder what a terminal shows.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}
