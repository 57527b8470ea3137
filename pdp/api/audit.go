package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ciampdp/pdp/pdp/audit"
)

// Routes of the auditor endpoints (read-only, auditor keys only).
const (
	AuditDecisionsPath = "/v1/audit/decisions"
)

// Auditor answers the auditor endpoints: *audit.Service.
type Auditor interface {
	Explain(ctx context.Context, id string) (audit.Explanation, error)
	Query(ctx context.Context, f audit.Filter, limit int) (audit.QueryResult, error)
}

// AdminRecorder writes administrative actions (consent and delegation
// changes, reads of the trail) into the decision trail, durably, before
// they are answered.
type AdminRecorder interface {
	RecordAdmin(ctx context.Context, action, application, target string, detail any) error
}

var (
	// errAuditor: the caller holds no auditor key.
	errAuditor = errors.New("the auditor endpoints need an auditor key (auth.auditor_keys)")
	// errUnrecorded: an administrative change was applied but its trail
	// record could not be written.
	errUnrecorded = errors.New("applied, but its record could not be written to the decision trail")
)

// recordAdmin records an administrative action; with no recorder it does
// nothing.
func (s *Server) recordAdmin(c echo.Context, action, app, target string, detail any) error {
	if s.adminLog == nil {
		return nil
	}
	if err := s.adminLog.RecordAdmin(c.Request().Context(), action, app, target, detail); err != nil {
		return fmt.Errorf("%s %s: %w: %w", action, target, errUnrecorded, err)
	}
	return nil
}

func (s *Server) auditRoutes(e *echo.Echo) {
	if s.auditor == nil {
		return
	}
	e.GET(AuditDecisionsPath, s.auditQuery)
	e.GET(AuditDecisionsPath+"/:id", s.auditExplain)
}

// auditorOf authenticates an auditor: a bearer token among the auditor
// keys. With authentication off (loopback only) the caller is "local".
func (s *Server) auditorOf(c echo.Context) (string, error) {
	if s.keys == nil && s.auditors == nil {
		return LocalApplication, nil
	}
	if s.auditors == nil {
		return "", errAuditor
	}
	who, err := s.auditors.authenticate(c.Request())
	if err != nil {
		return "", errAuditor
	}
	return who, nil
}

func (s *Server) auditExplain(c echo.Context) error {
	who, err := s.auditorOf(c)
	if err != nil {
		return err
	}
	if err := checkQueryNames(c.QueryParams()); err != nil {
		return err
	}
	id := c.Param("id")
	if err := s.recordAdmin(c, "trail.read", who, id, map[string]string{"endpoint": "explain"}); err != nil {
		return err
	}
	ex, err := s.auditor.Explain(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, ex)
}

func (s *Server) auditQuery(c echo.Context) error {
	who, err := s.auditorOf(c)
	if err != nil {
		return err
	}
	q := c.QueryParams()
	if err := checkQueryNames(q, auditQueryNames...); err != nil {
		return err
	}
	f := audit.Filter{
		Subject: q.Get("subject"), OnBehalfOf: q.Get("on_behalf_of"), Resource: q.Get("resource"),
		Action: q.Get("action"), Application: q.Get("application"), Result: q.Get("result"), Reason: q.Get("reason"),
	}
	for name, t := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			if *t, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return fmt.Errorf("%w: %s %q is not an RFC 3339 time", audit.ErrBadFilter, name, v)
			}
		}
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit <= 0 || limit > 10000 {
			return fmt.Errorf("%w: limit %q must be 1…10000", audit.ErrBadFilter, v)
		}
	}
	if err := f.Validate(); err != nil {
		return err
	}
	if err := s.recordAdmin(c, "trail.read", who, "", map[string]any{"endpoint": "query", "filter": f}); err != nil {
		return err
	}
	res, err := s.auditor.Query(c.Request().Context(), f, limit)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, res)
}

// auditQueryNames are the query parameters of GET AuditDecisionsPath.
var auditQueryNames = []string{"subject", "on_behalf_of", "resource", "action", "application", "result", "reason", "since", "until", "limit"}

// checkQueryNames refuses a query parameter not among allowed, and one
// given twice: an auditor's filter with a typo (resourse=…) or a second
// value must not silently widen the answer to every record.
func checkQueryNames(q url.Values, allowed ...string) error {
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return fmt.Errorf("%w: unknown query parameter %q (this endpoint takes none)", audit.ErrBadFilter, name)
			}
			return fmt.Errorf("%w: unknown query parameter %q (want one of %s)", audit.ErrBadFilter, name, strings.Join(allowed, ", "))
		}
		if len(q[name]) > 1 {
			return fmt.Errorf("%w: query parameter %q is given %d times (at most once)", audit.ErrBadFilter, name, len(q[name]))
		}
	}
	return nil
}
