package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// The request target the gateway decides on must be the one the upstream
// acts on. A proxy passes the target on as the client sent it, and
// applications read the same bytes in different ways: some cut the query
// at '#' or split it at ';', some take the first of two values and some
// the last, some compare parameter names without regard to case. The
// gateway refuses what it cannot read the one way every upstream reads it
// (paths: SplitPath; queries: parseQuery; values: valueSpec.resolve).

// errAmbiguous marks a request the upstream may read differently from the
// gateway: a query with '#', ';' or a bad escape, or a query parameter or
// header that a route maps into the evaluation given more than once.
// Answered 403 ambiguous_request.
var errAmbiguous = errors.New("ambiguous request")

// parseQuery parses a raw query strictly: '&'-separated, well-formed
// escapes, no '#' (a fragment the proxy passed on) and no ';' (a separator
// to some applications, data to others).
func parseQuery(raw string) (url.Values, error) {
	if i := strings.IndexAny(raw, "#;"); i >= 0 {
		return nil, fmt.Errorf("%w: the query has a %q", errAmbiguous, raw[i])
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: the query does not parse: %w", errAmbiguous, err)
	}
	return q, nil
}

// queryValue returns the one value of query parameter name. Parameters
// whose names differ from it only in case count as the same parameter:
// more than one value, or a value under another spelling, is ambiguous.
func queryValue(q url.Values, name string) (string, bool, error) {
	var (
		n     int
		value string
		found bool
	)
	for k, vs := range q {
		if !strings.EqualFold(k, name) {
			continue
		}
		if k != name {
			return "", false, fmt.Errorf("%w: query parameter %s is also given as %q", errAmbiguous, name, k)
		}
		n += len(vs)
		if len(vs) > 0 {
			value, found = vs[0], true
		}
	}
	if n > 1 {
		return "", false, fmt.Errorf("%w: query parameter %s is given %d times", errAmbiguous, name, n)
	}
	return value, found, nil
}
