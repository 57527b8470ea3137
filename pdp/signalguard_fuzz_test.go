package pdp

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzSessionOf: whatever JSON a request carries in context.session, the
// decoder answers a session or an error, never panics, and a session it
// accepts with an auth_time is marked known.
func FuzzSessionOf(f *testing.F) {
	for _, s := range []string{`{"id":"s-1","auth_time":1796288400}`, `{"auth_time":"x"}`, `"yesterday"`, `{"id":7}`, `{"auth_time":-1}`, `null`, `{"auth_time":1e300}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var v any
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber()
		if dec.Decode(&v) != nil {
			return
		}
		s, err := sessionOf(v)
		if err == nil && s.Known && s.AuthTime.IsZero() {
			t.Fatalf("%s: known session without an auth_time", raw)
		}
	})
}
