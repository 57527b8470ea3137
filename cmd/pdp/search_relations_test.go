package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
)

// searchPage is a search answer as the tests read it.
type searchPage struct {
	Page *struct {
		NextToken string `json:"next_token"`
		Count     int    `json:"count"`
		Total     int    `json:"total"`
	} `json:"page"`
	Results []struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"results"`
}

func (s *server) search(t *testing.T, path, body string) searchPage {
	t.Helper()
	code, data := s.do(t, http.MethodPost, path, body)
	if code != http.StatusOK {
		t.Fatalf("%s: status %d: %s", path, code, data)
	}
	var p searchPage
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatalf("%s answer %s: %v", path, data, err)
	}
	if p.Results == nil {
		t.Fatalf("%s answer %s: results is not an array", path, data)
	}
	return p
}

// TestServeSearchWithRelationships: search over HTTP finds users and
// accounts that exist only in SpiceDB (the bundle has no entities file),
// page by page, and Cedar still decides each one.
func TestServeSearchWithRelationships(t *testing.T) {
	files := map[string]string{}
	for k, v := range factsBundle {
		files[k] = v
	}
	files["policies/freeze.cedar"] = `
@id("acc-3-frozen")
forbid (principal, action, resource == Account::"acc-3");
`
	files["relationships.txt"] = factsBundle["relationships.txt"] + `
account:acc-1#owner@user:alice
account:acc-2#owner@user:alice
account:acc-3#owner@user:alice
account:acc-4#owner@user:alice
account:acc-5#owner@user:alice
account:acc-alice#owner@user:carol
account:acc-9#owner@user:dave
`
	dir := writeBundle(t, files)
	t.Setenv("PDP_RELATIONS_BOOTSTRAP", filepath.Join(dir, "relationships.txt"))
	s := startServer(t, "--dir", dir)

	// pages follows next_token until the last page and returns the ids of
	// each page; query is the body without its page member.
	pages := func(t *testing.T, path, query string, limit int) [][]string {
		t.Helper()
		var out [][]string
		token := ""
		for range 10 {
			page, _ := json.Marshal(map[string]any{"limit": limit, "token": token})
			p := s.search(t, path, query[:len(query)-1]+`, "page": `+string(page)+`}`)
			var got []string
			for _, r := range p.Results {
				got = append(got, r.ID)
			}
			out = append(out, got)
			if p.Page == nil || p.Page.Count != len(got) {
				t.Fatalf("page %d: %+v with %d results", len(out), p.Page, len(got))
			}
			if token = p.Page.NextToken; token == "" {
				return out
			}
		}
		t.Fatalf("more than 10 pages: %q", out)
		return nil
	}
	const (
		subjectPath  = "/access/v1/search/subject"
		resourcePath = "/access/v1/search/resource"
	)
	tests := []struct {
		name, path, query string
		limit             int
		want              [][]string
	}{
		{"the accounts alice may view, acc-3 frozen by policy", resourcePath,
			`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "view_statements"}, "resource": {"type": "account"}}`,
			2, [][]string{{"acc-1", "acc-2"}, {"acc-4", "acc-5"}, {"acc-alice"}}},
		{"the accounts a payment agent may pay 250 from", resourcePath,
			`{"subject": {"type": "user", "id": "bob"}, "action": {"name": "make_payment"}, "resource": {"type": "account"}, "context": {"amount": 250}}`,
			2, [][]string{{"acc-alice"}}},
		{"who may pay 250 from acc-alice (the expired mandate is left out)", subjectPath,
			`{"subject": {"type": "user"}, "action": {"name": "make_payment"}, "resource": {"type": "account", "id": "acc-alice"}, "context": {"amount": 250}}`,
			2, [][]string{{"alice", "bob"}, {"carol"}}},
		{"who may pay 1500 from acc-alice", subjectPath,
			`{"subject": {"type": "user"}, "action": {"name": "make_payment"}, "resource": {"type": "account", "id": "acc-alice"}, "context": {"amount": 1500}}`,
			0, [][]string{{"alice", "carol"}}},
		{"who may view a frozen account", subjectPath,
			`{"subject": {"type": "user"}, "action": {"name": "view_statements"}, "resource": {"type": "account", "id": "acc-3"}}`,
			1, [][]string{nil}},
		{"an unknown user", resourcePath,
			`{"subject": {"type": "user", "id": "nobody"}, "action": {"name": "view_statements"}, "resource": {"type": "account"}}`,
			2, [][]string{nil}},
		{"an unknown account", subjectPath,
			`{"subject": {"type": "user"}, "action": {"name": "view_statements"}, "resource": {"type": "account", "id": "acc-none"}}`,
			2, [][]string{nil}},
		{"an unknown type", resourcePath,
			`{"subject": {"type": "user", "id": "alice"}, "action": {"name": "view_statements"}, "resource": {"type": "card"}}`,
			2, [][]string{nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := pages(t, tc.path, tc.query, tc.limit)
			if !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Fatalf("pages %q, want %q", got, tc.want)
			}
		})
	}

	// The results name the searched type; the total counts every page.
	p := s.search(t, resourcePath, `{"subject": {"type": "user", "id": "alice"}, "action": {"name": "view_statements"}, "resource": {"type": "account"}, "page": {"limit": 2}}`)
	if p.Page.Total != 5 || p.Page.Count != 2 || p.Results[0].Type != "account" {
		t.Fatalf("first page %+v %+v", p.Page, p.Results)
	}
	// Without a page member, every result at once.
	p = s.search(t, subjectPath, `{"subject": {"type": "user"}, "action": {"name": "view_statements"}, "resource": {"type": "account", "id": "acc-alice"}}`)
	if p.Page != nil || len(p.Results) != 2 || p.Results[0].ID != "alice" || p.Results[1].ID != "carol" || p.Results[0].Type != "user" {
		t.Fatalf("unpaged answer %+v %+v", p.Page, p.Results)
	}
}
