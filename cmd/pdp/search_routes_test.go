package main

import (
	"encoding/json"
	"net/http"
	"testing"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
)

// TestSearchRoutesWithEveryTrailMode: the search endpoints are served and
// advertised whatever wraps the engine. With the decision trail on (sync,
// the default, or async) the engine is wrapped in the trail's recorder;
// search is handed to the HTTP API explicitly (api.Deps.Searcher), so a
// wrapper cannot take the routes away by not being the engine.
func TestSearchRoutesWithEveryTrailMode(t *testing.T) {
	for _, mode := range []string{pdpserver.TrailSync, pdpserver.TrailAsync, pdpserver.TrailOff} {
		t.Run(mode, func(t *testing.T) {
			t.Setenv("PDP_TRAIL_MODE", mode)
			s := startServer(t, "--dir", "../..")
			code, data := s.do(t, http.MethodGet, "/.well-known/authzen-configuration", "")
			var md struct {
				Subject  string `json:"search_subject_endpoint"`
				Resource string `json:"search_resource_endpoint"`
				Action   string `json:"search_action_endpoint"`
			}
			if code != http.StatusOK || json.Unmarshal(data, &md) != nil {
				t.Fatalf("metadata: %d %s", code, data)
			}
			if md.Subject == "" || md.Resource == "" || md.Action == "" {
				t.Errorf("metadata advertises no search endpoints: %s", data)
			}
			for path, body := range map[string]string{
				"/access/v1/search/action":   `{"subject":{"type":"user","id":"alice"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`,
				"/access/v1/search/resource": `{"subject":{"type":"user","id":"alice"},"action":{"name":"view_statements"},"resource":{"type":"account"},"context":{"purpose":"account_servicing"}}`,
				"/access/v1/search/subject":  `{"subject":{"type":"user"},"action":{"name":"view_statements"},"resource":{"type":"account","id":"acc-alice"},"context":{"purpose":"account_servicing"}}`,
			} {
				if code, data := s.do(t, http.MethodPost, path, body); code != http.StatusOK {
					t.Errorf("%s: %d %s", path, code, data)
				}
			}
		})
	}
}
