package api

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ciampdp/pdp/pdp/authzen"
)

// search answers POST {base}/access/v1/search/{subject,resource,action}.
func (s *Server) search(kind authzen.SearchKind) bodyHandler {
	return func(c echo.Context, app string, body []byte) error {
		q, err := authzen.DecodeSearch(kind, body)
		if err != nil {
			return err
		}
		if err := q.Bound(s.cfg.MaxBatch); err != nil {
			return err
		}
		q.Request.Application = app
		ctx := c.Request().Context()
		if kind == authzen.SearchAction {
			names, err := s.searcher.SearchActions(ctx, q.Request)
			if err != nil {
				return fmt.Errorf("search actions: %w", err)
			}
			results := make([]authzen.SearchActionResult, len(names))
			for i, n := range names {
				results[i] = authzen.SearchActionResult{Name: n}
			}
			return s.writePage(c, q, results)
		}
		find := s.searcher.SearchSubjects
		if kind == authzen.SearchResource {
			find = s.searcher.SearchResources
		}
		found, err := find(ctx, q.Request)
		if err != nil {
			return fmt.Errorf("search: %w", err)
		}
		results := make([]authzen.SearchEntity, len(found))
		for i, e := range found {
			results[i] = authzen.SearchEntity{Type: e.Type, ID: e.ID}
		}
		return s.writePage(c, q, results)
	}
}

func (s *Server) writePage(c echo.Context, q authzen.Search, results any) error {
	var (
		resp any
		err  error
	)
	switch r := results.(type) {
	case []authzen.SearchEntity:
		resp, err = authzen.Paginate(q, r)
	case []authzen.SearchActionResult:
		resp, err = authzen.Paginate(q, r)
	}
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, resp)
}
