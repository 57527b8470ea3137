package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/actorproof"
	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/authzen"
	"github.com/ciampdp/pdp/pdp/changefeed"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/ingest"
	"github.com/ciampdp/pdp/pdp/reason"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/revalidation"
	"github.com/labstack/echo/v4"
)

// errorBody is the body of every error answer.
type errorBody struct {
	Error string `json:"error"`
	// Reason is a stable code for the admin API's refusals (reasonOf).
	Reason string `json:"reason,omitempty"`
}

// classify maps an error to its status code and a one-line message that is
// safe to show the client. This is the only place errors become statuses.
func classify(err error) (int, string) {
	var re *authzen.RequestError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &re):
		return http.StatusBadRequest, re.Message
	case errors.Is(err, errUnauthenticated):
		return http.StatusUnauthorized, errUnauthenticated.Error()
	case errors.Is(err, actorproof.ErrUnproven):
		return http.StatusUnauthorized, err.Error()
	case errors.Is(err, actorproof.ErrKeysUnavailable):
		return http.StatusServiceUnavailable, "the actor's token cannot be checked: the identity provider's keys are unavailable; nothing was changed"
	case errors.Is(err, actorproof.ErrReplayUnavailable):
		return http.StatusServiceUnavailable, "the actor's token cannot be checked for reuse: its single use cannot be recorded; nothing was changed"
	case errors.Is(err, errAuditor):
		return http.StatusForbidden, errAuditor.Error()
	case errors.Is(err, audit.ErrBadFilter):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, audit.ErrNoSuchDecision):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, recorder.ErrRecordFailed):
		return http.StatusServiceUnavailable, "the answer could not be recorded in the decision trail (" + reason.TrailUnavailable + ")"
	case errors.Is(err, delegation.ErrNotRecorded), errors.Is(err, consent.ErrNotRecorded):
		// Write-ahead: the change was refused before anything was applied.
		return http.StatusServiceUnavailable, "the change could not be recorded in the decision trail, so nothing was changed (" + reason.TrailUnavailable + ")"
	case errors.Is(err, errShuttingDown):
		return http.StatusServiceUnavailable, errShuttingDown.Error()
	case errors.Is(err, errUnrecorded):
		return http.StatusInternalServerError, err.Error()
	case errors.Is(err, errSidecarRequest):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, ingest.ErrRefused):
		return http.StatusUnprocessableEntity, err.Error()
	case errors.Is(err, ingest.ErrSidecarBound):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, changefeed.ErrNoLease):
		return http.StatusServiceUnavailable, changefeed.ErrNoLease.Error()
	case errors.Is(err, changefeed.ErrTooManySidecars):
		return http.StatusServiceUnavailable, changefeed.ErrTooManySidecars.Error()
	case errors.As(err, new(*tooManyError)):
		return http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, errTooLarge.Error()
	case errors.Is(err, consent.ErrDecode):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, consent.ErrForbidden):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, consent.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, consent.ErrConflict):
		return http.StatusConflict, err.Error()
	case errors.Is(err, dormancy.ErrDecode):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, revalidation.ErrForbidden):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, revalidation.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, revalidation.ErrInvalid):
		return http.StatusUnprocessableEntity, err.Error()
	case errors.Is(err, revalidation.ErrNotRecorded):
		return http.StatusServiceUnavailable, "the revalidation could not be recorded in the decision trail, so nothing was changed (" + reason.TrailUnavailable + ")"
	case errors.Is(err, revalidation.ErrNotStored):
		return http.StatusServiceUnavailable, revalidation.ErrNotStored.Error()
	case errors.As(err, new(*consent.RuleError)):
		return http.StatusUnprocessableEntity, err.Error()
	case errors.Is(err, consent.ErrNoRegistry):
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, errAdminForbidden), errors.Is(err, errReadForbidden), errors.Is(err, delegation.ErrForbidden):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, delegation.ErrDecode):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, delegation.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, delegation.ErrConflict):
		return http.StatusConflict, err.Error()
	case errors.Is(err, delegation.ErrProjection):
		return http.StatusServiceUnavailable, delegation.ErrProjection.Error() + "; it is repaired at the next start or reconcile"
	case errors.As(err, new(*delegation.RuleError)):
		return http.StatusUnprocessableEntity, err.Error()
	case errors.Is(err, pdp.ErrInvalidID), errors.Is(err, pdp.ErrContextTooLarge):
		return http.StatusBadRequest, strings.ReplaceAll(err.Error(), "pdp: ", "")
	case errors.Is(err, pdp.ErrFactsUnavailable):
		return http.StatusServiceUnavailable, "relationship facts unavailable: the search cannot be answered"
	case errors.Is(err, pdp.ErrNotReady):
		return http.StatusServiceUnavailable, "no valid policy version is loaded yet"
	case errors.As(err, &he):
		// The router's 404 and 405, and anything else echo raises itself.
		return he.Code, strings.ToLower(http.StatusText(he.Code))
	default:
		return http.StatusInternalServerError, "internal error"
	}
}

// handleError is the echo HTTPErrorHandler: it answers {"error": message}
// with the status from classify, adds the Bearer challenge to a 401, and
// logs the full error (at Error for 5xx other than 503, else at Debug).
func (s *Server) handleError(err error, c echo.Context) {
	status, msg := classify(err)
	r := c.Request()
	level := slog.LevelDebug
	if status >= 500 && status != http.StatusServiceUnavailable {
		level = slog.LevelError
	}
	res := c.Response()
	if s.log.Enabled(r.Context(), level) {
		s.log.LogAttrs(r.Context(), level, "request failed",
			slog.Int("status", status),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("request_id", res.Header().Get(echo.HeaderXRequestID)),
			slog.Bool("committed", res.Committed),
			slog.String("error", err.Error()))
	}
	if res.Committed {
		return
	}
	if status == http.StatusUnauthorized {
		res.Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="pdp"`)
	}
	if werr := writeJSON(c, status, errorBody{Error: msg, Reason: reasonOf(err)}); werr != nil {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "writing error response failed", slog.String("error", werr.Error()))
	}
}
