package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/internal/strictjson"
)

// Delegations manages delegation records; *delegation.Service is the real
// one. Every change returns the relationship store's revision token after
// the change: a client that passes it on (or the PDP itself) never gets a
// decision from older state. The service records every change in the
// decision trail before it applies it (its Journal): a change that cannot
// be recorded is not applied (delegation.ErrNotRecorded, 503).
type Delegations interface {
	Offer(ctx context.Context, r delegation.OfferRequest) (delegation.Delegation, string, error)
	Accept(ctx context.Context, id string, by delegation.Actor) (delegation.Delegation, string, error)
	Revoke(ctx context.Context, id string, by delegation.Actor, reason string) (delegation.Delegation, string, error)
	Renounce(ctx context.Context, id string, by delegation.Actor, reason string) (delegation.Delegation, string, error)
	Suspend(ctx context.Context, id string, by delegation.Actor, reason string) (delegation.Delegation, string, error)
	Resume(ctx context.Context, id string, by delegation.Actor) (delegation.Delegation, string, error)
	// GetFor and ListFor read as the calling application may see (the
	// Service's rule, delegation.Reader): a record it may not see is not
	// found, exactly as one that does not exist.
	GetFor(ctx context.Context, id string, r delegation.Reader) (delegation.Delegation, error)
	ListFor(ctx context.Context, f delegation.Filter, r delegation.Reader) ([]delegation.Delegation, error)
}

var _ Delegations = (*delegation.Service)(nil)

// DelegationsPath is the admin API of delegation records.
const DelegationsPath = "/v1/delegations"

// LocalApplication is the application recorded for delegation changes
// when authentication is off.
const LocalApplication = "local"

// errAdminForbidden: the calling application may not administer
// delegations. (Which may record or change register-sourced ones is the
// delegation Service's rule.)
var errAdminForbidden = errors.New("this application may not administer delegations")

// errReadForbidden: the calling application may neither administer nor
// read delegations (403).
var errReadForbidden = errors.New("this application may not read delegations")

// delegationChange is the body of accept, revoke, renounce, suspend and
// resume: the user on whose behalf the calling application acts (the
// application itself comes from its credential), and an optional reason.
type delegationChange struct {
	Actor  delegation.Ref `json:"actor"`
	Reason string         `json:"reason,omitempty"`
}

// delegationAnswer is the answer to a change.
type delegationAnswer struct {
	Delegation delegation.Delegation `json:"delegation"`
	// Revision is the relationship store's revision token after the
	// change ("" when nothing was written to it).
	Revision string `json:"revision"`
}

func (s *Server) delegationRoutes(e *echo.Echo) {
	if s.delegations == nil {
		return
	}
	e.POST(DelegationsPath, s.offerDelegation, withActorToken)
	e.GET(DelegationsPath, s.listDelegations)
	e.GET(DelegationsPath+"/:id", s.getDelegation)
	for _, op := range []string{"accept", "revoke", "renounce", "suspend", "resume"} {
		e.POST(DelegationsPath+"/:id/"+op, s.changeDelegation(op), withActorToken)
	}
}

// admin authenticates the caller and checks that its application may
// administer delegations. With authentication off (loopback only), every
// caller may.
func (s *Server) admin(c echo.Context) (string, error) {
	app, err := s.keys.authenticate(c.Request())
	if err != nil {
		return "", err
	}
	if s.keys == nil {
		// Authentication is off (loopback only): changes are recorded as
		// made by the local application.
		return LocalApplication, nil
	}
	if !s.cfg.DelegationAdmins[app] {
		return "", fmt.Errorf("%w (application %q; see delegations.admin_applications)", errAdminForbidden, app)
	}
	return app, nil
}

// delegationReader authenticates the caller of a read: an administering
// application (Config.DelegationAdmins) or a reader (DelegationReaders).
// Which records it sees is the delegation Service's rule; with
// authentication off (loopback only), the local caller sees every record.
func (s *Server) delegationReader(c echo.Context) (delegation.Reader, error) {
	app, err := s.keys.authenticate(c.Request())
	if err != nil {
		return delegation.Reader{}, err
	}
	if s.keys == nil {
		return delegation.Reader{Application: LocalApplication, Whole: true}, nil
	}
	if !s.cfg.DelegationAdmins[app] && !s.cfg.DelegationReaders[app] {
		return delegation.Reader{}, fmt.Errorf("%w (application %q; see delegations.admin_applications and delegations.reader_applications)", errReadForbidden, app)
	}
	return delegation.Reader{Application: app}, nil
}

func (s *Server) offerDelegation(c echo.Context) error {
	app, err := s.admin(c)
	if err != nil {
		return err
	}
	req, err := decodeBody(s, c, delegation.DecodeOffer)
	if err != nil {
		return err
	}
	req.By.Application = app
	ctx, done, err := s.changing(c)
	if err != nil {
		return err
	}
	d, rev, err := s.delegations.Offer(ctx, req)
	done()
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, DelegationsPath+"/"+d.ID)
	return writeJSON(c, http.StatusCreated, delegationAnswer{Delegation: d, Revision: rev})
}

func (s *Server) changeDelegation(op string) echo.HandlerFunc {
	return func(c echo.Context) error {
		app, err := s.admin(c)
		if err != nil {
			return err
		}
		body, err := decodeBody(s, c, decodeChange)
		if err != nil {
			return err
		}
		if body.Actor.Type == "" || body.Actor.ID == "" {
			return fmt.Errorf("%w: actor needs a type and an id (the user the application acts for)", delegation.ErrDecode)
		}
		by := delegation.Actor{Application: app, Subject: body.Actor}
		ctx, done, err := s.changing(c)
		if err != nil {
			return err
		}
		id := c.Param("id")
		var (
			d   delegation.Delegation
			rev string
		)
		switch op {
		case "accept":
			d, rev, err = s.delegations.Accept(ctx, id, by)
		case "revoke":
			d, rev, err = s.delegations.Revoke(ctx, id, by, body.Reason)
		case "renounce":
			d, rev, err = s.delegations.Renounce(ctx, id, by, body.Reason)
		case "suspend":
			d, rev, err = s.delegations.Suspend(ctx, id, by, body.Reason)
		case "resume":
			d, rev, err = s.delegations.Resume(ctx, id, by)
		}
		done()
		if err != nil {
			return err
		}
		return writeJSON(c, http.StatusOK, delegationAnswer{Delegation: d, Revision: rev})
	}
}

// decodeChange reads the body of a delegation change strictly.
func decodeChange(r io.Reader) (delegationChange, error) {
	var body delegationChange
	raw, err := io.ReadAll(io.LimitReader(r, delegation.MaxOfferBytes+1))
	if err != nil {
		return body, fmt.Errorf("%w: read: %w", delegation.ErrDecode, err)
	}
	if len(raw) > delegation.MaxOfferBytes {
		return body, fmt.Errorf("%w: larger than %d bytes", delegation.ErrDecode, delegation.MaxOfferBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return body, fmt.Errorf("%w: %s", delegation.ErrDecode, strings.TrimPrefix(err.Error(), "json: "))
	}
	if err := strictjson.CheckNames(raw); err != nil {
		return body, fmt.Errorf("%w: %w", delegation.ErrDecode, err)
	}
	return body, nil
}

func (s *Server) getDelegation(c echo.Context) error {
	r, err := s.delegationReader(c)
	if err != nil {
		return err
	}
	d, err := s.delegations.GetFor(c.Request().Context(), c.Param("id"), r)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, d)
}

// listDelegations answers GET /v1/delegations?principal=user:alice&agent=…&parent=…
// with the records the caller may see.
func (s *Server) listDelegations(c echo.Context) error {
	r, err := s.delegationReader(c)
	if err != nil {
		return err
	}
	var f delegation.Filter
	q := c.QueryParams()
	for k := range q {
		if k != "principal" && k != "agent" && k != "parent" {
			return fmt.Errorf("%w: unknown query parameter %q (want principal, agent or parent)", delegation.ErrDecode, k)
		}
	}
	for _, p := range []struct {
		name string
		dst  **delegation.Ref
	}{{"principal", &f.Principal}, {"agent", &f.Agent}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		typ, id, ok := strings.Cut(v, ":")
		if !ok || typ == "" || id == "" {
			return fmt.Errorf("%w: %s=%q: want type:id, as in user:alice", delegation.ErrDecode, p.name, v)
		}
		*p.dst = &delegation.Ref{Type: typ, ID: id}
	}
	f.Parent = q.Get("parent")
	if f.Principal == nil && f.Agent == nil && f.Parent == "" {
		return fmt.Errorf("%w: name a principal, an agent or a parent (listing every delegation is not offered)", delegation.ErrDecode)
	}
	ds, err := s.delegations.ListFor(c.Request().Context(), f, r)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []delegation.Delegation{}
	}
	return writeJSON(c, http.StatusOK, struct {
		Delegations []delegation.Delegation `json:"delegations"`
	}{ds})
}
