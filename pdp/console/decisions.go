package console

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/ciampdp/pdp/pdp/audit"
)

// pageSize is how many decisions a list page shows.
const pageSize = 50

// filterNames are the decisions list's query parameters.
var filterNames = []string{"subject", "on_behalf_of", "resource", "action", "application", "result", "reason", "delegation", "consent_grant", "since", "until", "before"}

// timeLayouts are the accepted forms of since and until: RFC 3339, and
// the browser's datetime-local (taken as UTC).
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04"}

// parseFilter reads the decisions list's query: a filter and a page cursor.
func parseFilter(q url.Values) (audit.Filter, uint64, error) {
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(filterNames, name) {
			return audit.Filter{}, 0, fmt.Errorf("%w: unknown query parameter %q", audit.ErrBadFilter, name)
		}
		if len(q[name]) > 1 {
			return audit.Filter{}, 0, fmt.Errorf("%w: query parameter %q is given %d times", audit.ErrBadFilter, name, len(q[name]))
		}
	}
	f := audit.Filter{Subject: q.Get("subject"), OnBehalfOf: q.Get("on_behalf_of"), Resource: q.Get("resource"),
		Action: q.Get("action"), Application: q.Get("application"), Result: q.Get("result"), Reason: q.Get("reason"),
		Delegation: q.Get("delegation"), ConsentGrant: q.Get("consent_grant")}
	for name, t := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		var err error
		for _, layout := range timeLayouts {
			if *t, err = time.ParseInLocation(layout, v, time.UTC); err == nil {
				break
			}
		}
		if err != nil {
			return audit.Filter{}, 0, fmt.Errorf("%w: %s %q is not a time (2026-03-01T10:00 or RFC 3339)", audit.ErrBadFilter, name, v)
		}
	}
	var before uint64
	if v := q.Get("before"); v != "" {
		var err error
		if before, err = strconv.ParseUint(v, 10, 64); err != nil {
			return audit.Filter{}, 0, fmt.Errorf("%w: before %q is not a record number", audit.ErrBadFilter, v)
		}
	}
	return f, before, f.Validate()
}

// decisionsView is the decisions list page.
type decisionsView struct {
	Form    url.Values
	Result  audit.QueryResult
	Older   string // the next page's URL; "" on the last page
	Newest  string // the first page's URL; "" on it
	Since   string
	Until   string
	Entries []audit.Entry
}

func (c *Console) decisions(w http.ResponseWriter, r *http.Request, ses *session) {
	q := r.URL.Query()
	// Empty fields of the filter form mean "any".
	for k, v := range q {
		if len(v) == 1 && v[0] == "" {
			delete(q, k)
		}
	}
	f, before, err := parseFilter(q)
	if err != nil {
		c.fail(w, r, ses, err)
		return
	}
	if err := c.recordRead(r, ses, "", map[string]any{"endpoint": "console.decisions", "filter": f}); err != nil {
		c.fail(w, r, ses, err)
		return
	}
	res, err := c.deps.Auditor.QueryPage(r.Context(), f, before, pageSize)
	if err != nil {
		c.fail(w, r, ses, err)
		return
	}
	v := decisionsView{Form: q, Result: res, Entries: res.Entries}
	if res.Truncated && len(res.Entries) > 0 {
		next := maps.Clone(q)
		next.Set("before", strconv.FormatUint(res.Entries[len(res.Entries)-1].Seq, 10))
		v.Older = Prefix + "decisions?" + next.Encode()
	}
	if before != 0 {
		first := maps.Clone(q)
		first.Del("before")
		v.Newest = Prefix + "decisions?" + first.Encode()
	}
	c.render(w, r, http.StatusOK, "decisions", ses, v)
}
