package authzen

import (
	"errors"
	"testing"
)

// FuzzDecodeSearch: the search decoder never panics, reports every problem
// as a RequestError, and a decoded search names the searched type; paging
// with any token either fails cleanly or stays within the results.
func FuzzDecodeSearch(f *testing.F) {
	for _, s := range []string{
		`{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`,
		`{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record"},"page":{"limit":1}}`,
		`{"subject":{"type":"user","id":"alice"},"resource":{"type":"record","id":"r"},"page":{"token":"AAAAAAAAAAAAAAAAAAAAAA","limit":2}}`,
		`{"page":{"limit":-1}}`, `[]`, ``, `{"subject":"x"}`,
	} {
		for k := SearchSubject; k <= SearchAction; k++ {
			f.Add(int(k), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, kind int, body []byte) {
		k := SearchKind(kind%3 + 1)
		s, err := DecodeSearch(k, body)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a RequestError", err)
			}
			return
		}
		switch k {
		case SearchSubject:
			if s.Request.Subject.Type == "" || s.Request.Subject.ID != "" || s.Request.Resource.ID == "" {
				t.Fatalf("subject search decoded as %+v", s.Request)
			}
		case SearchResource:
			if s.Request.Resource.Type == "" || s.Request.Resource.ID != "" || s.Request.Subject.ID == "" {
				t.Fatalf("resource search decoded as %+v", s.Request)
			}
		case SearchAction:
			if s.Request.Subject.ID == "" || s.Request.Resource.ID == "" || s.Request.Action.Name != "" {
				t.Fatalf("action search decoded as %+v", s.Request)
			}
		}
		all := []int{1, 2, 3, 4, 5}
		page, err := Paginate(s, all)
		if err == nil && (len(page.Results) > len(all) || (page.Page != nil && page.Page.Count != len(page.Results))) {
			t.Fatalf("page %+v", page)
		}
	})
}
