package api

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ciampdp/pdp/pdp/reason"
	"github.com/ciampdp/pdp/pdp/signalledger"
	"github.com/ciampdp/pdp/pdp/signals"
)

// Routes of the risk signal receiver.
const (
	// SSFEventsPath is the push endpoint (RFC 8935) for SETs.
	SSFEventsPath = "/ssf/events"
	// SignalsPath serves a subject's signals to administrators.
	SignalsPath = "/v1/signals"
	// SETContentType is the media type of a pushed SET.
	SETContentType = "application/secevent+jwt"
)

// Signals is the risk signal receiver: it verifies and stores pushed SETs
// and shows a subject's signals.
type Signals interface {
	// Receive verifies a compact SET and stores its events. A SET it
	// refuses is a *signals.SETError; signalledger.ErrDuplicate and
	// signalledger.ErrNotRecorded say why nothing was stored.
	// bearer is the push's bearer token ("" when none).
	Receive(ctx context.Context, body []byte, bearer string) ([]signals.Event, error)
	// Subject returns the signals of an entity (AuthZEN type and id).
	Subject(ctx context.Context, typ, id string) (SignalSubject, error)
	// MaxBytes is the largest SET accepted.
	MaxBytes() int
}

// SignalSubject is what the PDP holds about one subject's risk signals:
// the events that hold now (with their registry rule) and every event
// received for it.
type SignalSubject struct {
	Entity  string          `json:"entity"`
	Active  []ActiveSignal  `json:"active"`
	History []signals.Event `json:"history"`
}

// ActiveSignal is a received event that holds now, with its rule.
type ActiveSignal struct {
	Event   signals.Event     `json:"event"`
	Rule    string            `json:"rule"`
	Reason  string            `json:"reason"`
	Effects map[string]string `json:"effects"`
	Scope   string            `json:"scope"`
}

// Errors of the signal endpoints.
var (
	// ErrUnknownType: the subject type is not in the schema.
	ErrUnknownType = errors.New("the subject type is not declared in the schema")
	// errSignalAdmin: the caller is not in Config.SignalAdmins.
	errSignalAdmin = errors.New("this application may not read risk signals")
)

// setErrorBody is the RFC 8935 §2.3 error body.
type setErrorBody struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

func (s *Server) signalRoutes(e *echo.Echo) {
	if s.signals == nil {
		return
	}
	e.POST(SSFEventsPath, s.pushSET)
	e.GET(SignalsPath+"/subjects/:type/:id", s.signalSubject, s.keys.requireAuth)
}

// pushSET is the RFC 8935 push endpoint: 202 with an empty body when the
// SET is stored; 400 with {"err","description"} when it is refused (and
// nothing changed); 503 when it could not be recorded in the trail.
func (s *Server) pushSET(c echo.Context) error {
	r := c.Request()
	mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if err != nil || mt != SETContentType {
		return c.JSON(http.StatusBadRequest, setErrorBody{signals.ErrCodeInvalidRequest, "Content-Type must be " + SETContentType})
	}
	max := s.signals.MaxBytes()
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(max)+1))
	if err != nil {
		return c.JSON(http.StatusBadRequest, setErrorBody{signals.ErrCodeInvalidRequest, "the body could not be read"})
	}
	if len(body) > max {
		return c.JSON(http.StatusBadRequest, setErrorBody{signals.ErrCodeInvalidRequest, "the SET is too large"})
	}
	bearer := strings.TrimSpace(r.Header.Get(echo.HeaderAuthorization))
	if len(bearer) > 7 && strings.EqualFold(bearer[:7], "bearer ") {
		bearer = strings.TrimSpace(bearer[7:])
	}
	// Carried through when the transmitter hangs up, and waits for the
	// sidecars like a change (see changing).
	ctx, done, err := s.changing(c)
	if err != nil {
		return err
	}
	_, err = s.signals.Receive(ctx, body, bearer)
	done()
	var se *signals.SETError
	switch {
	case err == nil:
		return c.NoContent(http.StatusAccepted)
	case errors.As(err, &se) && se.Code == signals.ErrCodeAuthentication:
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="ssf"`)
		return c.JSON(http.StatusUnauthorized, setErrorBody{se.Code, se.Description})
	case errors.As(err, &se):
		s.log.InfoContext(r.Context(), "SET refused", "err", se.Code, "description", se.Description)
		return c.JSON(http.StatusBadRequest, setErrorBody{se.Code, se.Description})
	case errors.Is(err, signalledger.ErrDuplicate):
		return c.JSON(http.StatusBadRequest, setErrorBody{signals.ErrCodeInvalidRequest, "this jti was received before; nothing changed"})
	case errors.Is(err, signalledger.ErrNotRecorded):
		return c.JSON(http.StatusServiceUnavailable, setErrorBody{reason.TrailUnavailable, "the SET could not be recorded in the decision trail, so nothing was stored; send it again"})
	default:
		s.log.ErrorContext(r.Context(), "SET not stored", "error", err)
		return c.JSON(http.StatusServiceUnavailable, setErrorBody{"temporarily_unavailable", "the SET could not be stored; send it again"})
	}
}

// signalSubject shows a subject's signals to a signals administrator
// (Config.SignalAdmins, or any caller with authentication off), and to
// the auditors.
func (s *Server) signalSubject(c echo.Context) error {
	if s.keys != nil {
		app, _ := s.keys.authenticate(c.Request())
		if !s.cfg.SignalAdmins[app] {
			return echo.NewHTTPError(http.StatusForbidden, errSignalAdmin.Error())
		}
	}
	out, err := s.signals.Subject(c.Request().Context(), c.Param("type"), c.Param("id"))
	if errors.Is(err, ErrUnknownType) {
		return echo.NewHTTPError(http.StatusNotFound, err.Error())
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}
