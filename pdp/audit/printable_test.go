package audit

import (
	"strings"
	"testing"
	"unicode"
)

func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"user:alice view_statements account:acc-alice", "user:alice view_statements account:acc-alice"},
		{"user:\x1b]0;pwned\x07bob", `user:\x1b]0;pwned\x07bob`},
		{"a\r\nb\tc", `a\x0d\x0ab\x09c`},
		{"del\x7f c1\u0085", `del\x7f c1\x85`},
		{"bidi\u202eevil", `bidi\u202eevil`},
		{"bad\xffutf8", `bad\xffutf8`},
		{`back\slash`, `back\\slash`},
		{"Grüße → ok", "Grüße → ok"},
	} {
		if got := Printable(tc.in); got != tc.want {
			t.Errorf("Printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b[31mred", "a\nb", "\u202e", "\xff", `\x1b`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Printable(s)
		for _, r := range out {
			if unsafeRune(r) || r == unicode.ReplacementChar && !strings.ContainsRune(s, unicode.ReplacementChar) {
				t.Fatalf("Printable(%q) = %q keeps %U", s, out, r)
			}
		}
	})
}
