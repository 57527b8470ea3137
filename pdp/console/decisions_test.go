package console

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/audit"
)

func TestParseFilter(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		query  string
		want   audit.Filter
		before uint64
		bad    string
	}{
		{query: "", want: audit.Filter{}},
		{query: "subject=user:bob&on_behalf_of=user:alice&resource=account:acc-alice&action=make_payment&application=mobile-banking&result=deny&reason=delegation_revoked",
			want: audit.Filter{Subject: "user:bob", OnBehalfOf: "user:alice", Resource: "account:acc-alice", Action: "make_payment", Application: "mobile-banking", Result: "deny", Reason: "delegation_revoked"}},
		{query: "since=2026-03-01T10:00", want: audit.Filter{Since: at}},
		{query: "since=2026-03-01T10:00:00&until=2026-03-01T11:00:00%2B01:00", bad: "not before"},
		{query: "until=2026-03-01T10:00:00Z", want: audit.Filter{Until: at}},
		{query: "before=42", before: 42},
		{query: "before=-1", bad: "record number"},
		{query: "since=yesterday", bad: "not a time"},
		{query: "subject=bob", bad: "type:id"},
		{query: "result=maybe", bad: "allow or deny"},
		{query: "resourse=account:x", bad: "unknown query parameter"},
		{query: "subject=user:a&subject=user:b", bad: "2 times"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			f, before, err := parseFilter(q)
			if tc.bad != "" {
				if !errors.Is(err, audit.ErrBadFilter) || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("%v, want ErrBadFilter saying %q", err, tc.bad)
				}
				return
			}
			if err != nil || before != tc.before || f != tc.want {
				t.Fatalf("%+v %d %v, want %+v %d", f, before, err, tc.want, tc.before)
			}
		})
	}
}

// FuzzParseFilter: any query string is refused with ErrBadFilter or gives
// a valid filter; the decisions page answers it with 200 or 400, never
// with a 5xx and never with the input unescaped.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"subject=user:bob", "since=2026-03-01T10:00&until=2026-03-02T10:00", "before=5&result=deny",
		"reason=%3Cscript%3E", "subject=user:%3Cscript%3Ealert(1)%3C/script%3E", "x=1", "since=%00"} {
		f.Add(s)
	}
	c := newFuzzConsole(f)
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		flt, _, err := parseFilter(q)
		switch {
		case err != nil && !errors.Is(err, audit.ErrBadFilter):
			t.Fatalf("%q: %v", raw, err)
		case err == nil && flt.Validate() != nil:
			t.Fatalf("%q: an invalid filter passed", raw)
		}
		rec := c.get(t, "/console/decisions?"+q.Encode())
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("%q: %d %s", raw, rec.Code, rec.Body)
		}
		if strings.Contains(strings.ToLower(rec.Body.String()), "<script") {
			t.Fatalf("%q: unescaped markup in the page", raw)
		}
	})
}
