package gateway

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
)

// TestAmbiguousTargets: what the upstream may read differently from the
// gateway is refused, not decided.
func TestAmbiguousTargets(t *testing.T) {
	t.Run("queries", func(t *testing.T) {
		for _, tt := range []struct {
			raw string
			ok  bool
		}{
			{"amount=900&currency=EUR", true},
			{"amount=900&currency=%45UR", true},
			{"", true},
			{"amount=900&x=#&currency=USD", false},
			{"amount=900&currency=EUR#frag", false},
			{"amount=900;currency=USD", false},
			{"amount=900&x=%zz", false},
		} {
			if _, err := parseQuery(tt.raw); (err == nil) != tt.ok || (err != nil && !errors.Is(err, errAmbiguous)) {
				t.Errorf("parseQuery(%q): %v, want ok %v", tt.raw, err, tt.ok)
			}
		}
	})
	t.Run("values", func(t *testing.T) {
		for _, tt := range []struct {
			spec, query string
			header      http.Header
			want        any
			err         error // nil: no error
		}{
			{"query:currency", "currency=EUR", nil, "EUR", nil},
			{"query:currency", "amount=1", nil, nil, nil},
			{"query:currency", "currency=EUR&currency=USD", nil, nil, errAmbiguous},
			{"query:currency", "currency=EUR&currency=", nil, nil, errAmbiguous},
			{"query:currency", "currency=EUR&CURRENCY=USD", nil, nil, errAmbiguous},
			{"query:currency", "Currency=USD", nil, nil, errAmbiguous},
			{"query:amount", "%61mount=5000&amount=900", nil, nil, errAmbiguous},
			{"query:currency", "currency=EUR%ff", nil, nil, errValue},
			{"query:currency", "currency=EUR%0d%0aX", nil, nil, errValue},
			{"query:amount|number", "amount=+900", nil, nil, errValue},
			{"query:amount|number", "amount=900", nil, "900", nil},
			{"header:X-Amount", "", http.Header{"X-Amount": {"1", "2"}}, nil, errAmbiguous},
			{"header:X-Amount", "", http.Header{"X-Amount": {"1"}}, "1", nil},
		} {
			v, err := parseValue(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := v.resolve(&valueInput{query: q, header: tt.header})
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Errorf("%s with %q %v: %v, want %v", tt.spec, tt.query, tt.header, err, tt.err)
				}
				continue
			}
			if err != nil || got != tt.want && !(got != nil && tt.want != nil && toString(got) == tt.want) {
				t.Errorf("%s with %q %v: %#v, %v; want %#v", tt.spec, tt.query, tt.header, got, err, tt.want)
			}
		}
	})
	t.Run("paths", func(t *testing.T) {
		for _, p := range []string{"/accounts/acc-alice;v=1/statements", "/accounts/acc-alice/statements#/../x", "/a#"} {
			if _, err := SplitPath(p); !errors.Is(err, ErrPath) {
				t.Errorf("SplitPath(%q): %v, want ErrPath", p, err)
			}
		}
		for _, uri := range []string{"/a/b?x=1#f", "http://h/a#f"} {
			p, q := splitURI(uri)
			_, perr := SplitPath(p)
			_, qerr := parseQuery(q)
			if perr == nil && qerr == nil {
				t.Errorf("splitURI(%q) = %q, %q: neither refused", uri, p, q)
			}
		}
	})
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case interface{ String() string }:
		return x.String()
	}
	return ""
}
