package authzen

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/ciampdp/pdp/pdp"
)

// Search endpoints of the AuthZEN 1.0 HTTPS binding.
const (
	SearchSubjectPath  = "/access/v1/search/subject"
	SearchResourcePath = "/access/v1/search/resource"
	SearchActionPath   = "/access/v1/search/action"
)

// SearchKind names the three searches.
type SearchKind int

const (
	SearchSubject SearchKind = iota + 1
	SearchResource
	SearchAction
)

// Page is a search request's paging: an opaque token from the previous
// answer and the most results wanted (0: all).
type Page struct {
	Token string `json:"token"`
	Limit int    `json:"limit"`
}

// Search is a decoded search request. For subject search Request.Subject
// holds only the type (an id sent is ignored), likewise the resource for
// resource search; action search has no action.
type Search struct {
	Kind    SearchKind
	Request pdp.Request
	Page    *Page
	// key identifies the query (everything but the page), so that a page
	// token is only accepted for the query that issued it.
	key [8]byte
	// max is the page size when the request asked for all results (see
	// Bound); 0: unbounded.
	max int
}

type wireSearch struct {
	wireEvaluation
	Page *struct {
		Token string       `json:"token"`
		Limit *json.Number `json:"limit"`
	} `json:"page"`
}

// DecodeSearch strictly decodes a search body. Missing required members,
// and a missing id on an input entity (the resource of subject search, the
// subject of resource search, both for action search), are RequestErrors.
func DecodeSearch(kind SearchKind, body []byte) (Search, error) {
	var w wireSearch
	if err := decodeObject(body, &w); err != nil {
		return Search{}, err
	}
	searched := func(member string, e *wireEntity) error {
		if e == nil {
			return badRequest(member+" is required", nil)
		}
		if e.Type == "" {
			return badRequest(member+".type is required and must be a non-empty string", nil)
		}
		return nil
	}
	needAction := func() error {
		if w.Action == nil {
			return badRequest("action is required", nil)
		}
		if w.Action.Name == "" {
			return badRequest("action.name is required and must be a non-empty string", nil)
		}
		return nil
	}
	var errs []error
	switch kind {
	case SearchSubject:
		errs = []error{searched("subject", w.Subject), needAction(), validateEntity("resource", w.Resource)}
	case SearchResource:
		errs = []error{validateEntity("subject", w.Subject), needAction(), searched("resource", w.Resource)}
	case SearchAction:
		errs = []error{validateEntity("subject", w.Subject), validateEntity("resource", w.Resource)}
	default:
		return Search{}, badRequest("unknown search", nil)
	}
	for _, err := range errs {
		if err != nil {
			return Search{}, err
		}
	}
	s := Search{Kind: kind, Request: w.request()}
	switch kind {
	case SearchSubject:
		s.Request.Subject = pdp.Entity{Type: s.Request.Subject.Type}
	case SearchResource:
		s.Request.Resource = pdp.Entity{Type: s.Request.Resource.Type}
	case SearchAction:
		s.Request.Action = pdp.Action{}
	}
	if w.Page != nil {
		s.Page = &Page{Token: w.Page.Token}
		if w.Page.Limit != nil {
			n, err := strconv.Atoi(w.Page.Limit.String())
			if err != nil || n < 0 {
				return Search{}, badRequest("page.limit must be a non-negative integer", err)
			}
			s.Page.Limit = n
		}
	}
	canon, _ := json.Marshal(struct {
		K int
		R pdp.Request
		L int
	}{int(kind), s.Request, limitOf(s.Page)})
	sum := sha256.Sum256(canon)
	copy(s.key[:], sum[:8])
	return s, nil
}

// Bound caps the answer at max results a page: a page.limit above max is
// a RequestError, and a search that asked for all results (no page, or
// limit 0) gets pages of max, with a next_token while more remain (the
// token works with the same request, the page member holding only it).
func (s *Search) Bound(max int) error {
	if max <= 0 {
		return nil
	}
	if s.Page != nil && s.Page.Limit > max {
		return badRequest(fmt.Sprintf("page.limit %d is above the most results a page may hold (%d, http.max_batch)", s.Page.Limit, max), nil)
	}
	s.max = max
	return nil
}

func limitOf(p *Page) int {
	if p == nil {
		return 0
	}
	return p.Limit
}

// PageResponse is the page member of a search answer. NextToken is "" on
// the last page.
type PageResponse struct {
	NextToken string `json:"next_token"`
	Count     int    `json:"count"`
	Total     int    `json:"total"`
}

// SearchEntity is a subject or resource result: exactly type, then id.
type SearchEntity struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// SearchAction is an action result.
type SearchActionResult struct {
	Name string `json:"name"`
}

// SearchResponse is a search answer; Results is never null.
type SearchResponse[T any] struct {
	Page    *PageResponse `json:"page,omitempty"`
	Results []T           `json:"results"`
}

// Paginate cuts the full, ordered result list to the requested page. A
// token that this query did not issue is a RequestError.
func Paginate[T any](s Search, all []T) (SearchResponse[T], error) {
	if all == nil {
		all = []T{}
	}
	if s.Page == nil && (s.max == 0 || len(all) <= s.max) {
		return SearchResponse[T]{Results: all}, nil
	}
	if s.Page == nil {
		s.Page = &Page{}
	}
	offset := 0
	if s.Page.Token != "" {
		raw, err := base64.RawURLEncoding.DecodeString(s.Page.Token)
		if err != nil || len(raw) != 16 || [8]byte(raw[:8]) != s.key {
			return SearchResponse[T]{}, badRequest("page.token does not belong to this query (the entities and limit must match the request that returned it)", err)
		}
		offset = int(binary.BigEndian.Uint64(raw[8:]))
	}
	offset = min(offset, len(all))
	end := len(all)
	switch {
	case s.Page.Limit > 0:
		end = min(offset+s.Page.Limit, len(all))
	case s.max > 0:
		end = min(offset+s.max, len(all))
	}
	page := &PageResponse{Count: end - offset, Total: len(all)}
	if end < len(all) {
		var raw [16]byte
		copy(raw[:8], s.key[:])
		binary.BigEndian.PutUint64(raw[8:], uint64(end))
		page.NextToken = base64.RawURLEncoding.EncodeToString(raw[:])
	}
	return SearchResponse[T]{Page: page, Results: all[offset:end]}, nil
}
