package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/revalidation"
)

// Dormancy makes revalidations and reports on the dormant population
// (*revalidation.Service, with the active bundle's rules).
type Dormancy interface {
	RevalidateIdentity(ctx context.Context, r revalidation.RevalidateRequest) (dormancy.Revalidation, error)
	ReconfirmDelegation(ctx context.Context, r revalidation.ReconfirmRequest) (dormancy.Revalidation, error)
	Report(ctx context.Context, o revalidation.ReportOptions) (revalidation.Report, error)
}

// Routes of dormancy.
const (
	// DormancyPath: POST …/identities/{subject}/revalidate (dormancy
	// administrators) and …/delegations/{id}/reconfirm (the principal).
	DormancyPath = "/v1/dormancy"
	// AuditDormancyPath is the auditor's report (?format=json|csv,
	// ?from=, ?to= bound the revalidations listed).
	AuditDormancyPath = "/v1/audit/dormancy"
)

func (s *Server) dormancyRoutes(e *echo.Echo) {
	if s.dormancy == nil {
		return
	}
	e.POST(DormancyPath+"/identities/:subject/revalidate", s.revalidateIdentity, withActorToken)
	e.POST(DormancyPath+"/delegations/:id/reconfirm", s.reconfirmDelegation, withActorToken)
	e.GET(AuditDormancyPath, s.dormancyReport)
}

// dormancyCaller authenticates the caller of a change; with
// authentication off it is "local" (which the services' lists name only
// when configured so).
func (s *Server) dormancyCaller(c echo.Context) (string, error) {
	app, err := s.keys.authenticate(c.Request())
	if err != nil {
		return "", err
	}
	if s.keys == nil {
		return LocalApplication, nil
	}
	return app, nil
}

func (s *Server) revalidateIdentity(c echo.Context) error {
	app, err := s.dormancyCaller(c)
	if err != nil {
		return err
	}
	subject, err := dormancy.ParseSubject(c.Param("subject"))
	if err != nil {
		return err
	}
	body, err := decodeBody(s, c, dormancy.DecodeChange)
	if err != nil {
		return err
	}
	ctx, done, err := s.changing(c)
	if err != nil {
		return err
	}
	r, err := s.dormancy.RevalidateIdentity(ctx, revalidation.RevalidateRequest{Subject: subject,
		By: dormancy.Actor{Application: app, Subject: body.Actor}, Reason: body.Reason})
	done()
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusCreated, r)
}

func (s *Server) reconfirmDelegation(c echo.Context) error {
	app, err := s.dormancyCaller(c)
	if err != nil {
		return err
	}
	body, err := decodeBody(s, c, dormancy.DecodeChange)
	if err != nil {
		return err
	}
	ctx, done, err := s.changing(c)
	if err != nil {
		return err
	}
	r, err := s.dormancy.ReconfirmDelegation(ctx, revalidation.ReconfirmRequest{Delegation: c.Param("id"),
		By: dormancy.Actor{Application: app, Subject: body.Actor}, Reason: body.Reason})
	done()
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusCreated, r)
}

// dormancyReport answers the report to an auditor (recorded in the trail
// as a read first).
func (s *Server) dormancyReport(c echo.Context) error {
	who, err := s.auditorOf(c)
	if err != nil {
		return err
	}
	q := c.QueryParams()
	if err := checkQueryNames(q, "format", "from", "to"); err != nil {
		return err
	}
	var o revalidation.ReportOptions
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &o.From}, {"to", &o.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return fmt.Errorf("%w: %s=%q: want an RFC 3339 time", dormancy.ErrDecode, p.name, v)
			}
			*p.dst = t
		}
	}
	format := q.Get("format")
	if format != "" && format != "json" && format != "csv" {
		return fmt.Errorf("%w: format=%q: want json or csv", dormancy.ErrDecode, format)
	}
	if err := s.recordAdmin(c, "trail.read", who, "dormancy", map[string]string{"endpoint": "dormancy report"}); err != nil {
		return err
	}
	o.Progress = func(scanned, total int) {
		s.log.InfoContext(c.Request().Context(), "dormancy report", "scanned", scanned, "identities", total)
	}
	rep, err := s.dormancy.Report(c.Request().Context(), o)
	if err != nil {
		return err
	}
	if format == "csv" {
		c.Response().Header().Set(echo.HeaderContentType, "text/csv; charset=utf-8")
		c.Response().WriteHeader(http.StatusOK)
		return rep.WriteCSV(c.Response())
	}
	return writeJSON(c, http.StatusOK, rep)
}
