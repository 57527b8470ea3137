package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ciampdp/pdp/pdp/changefeed"
)

// The HTTP side of the change feed (pdp/changefeed owns the feed itself
// and documents the protocol).

// Routes and headers of the sidecar support.
const (
	ChangesPath     = "/v1/changes"
	SidecarIDHeader = "PDP-Sidecar-Id"
	// HeaderUnacknowledgedSidecars is on the answer of a change call
	// (delegation, consent) when sidecars that may have served an answer
	// from before the change did not acknowledge it: application/id,
	// comma-separated. Their leases ran out before the call returned, so
	// they serve nothing cached (no degraded allow either) until they hear
	// from the PDP again.
	HeaderUnacknowledgedSidecars = "PDP-Unacknowledged-Sidecars"
)

// Bounds of a poll.
const (
	DefaultChangeWait = time.Second
	MaxChangeWait     = 10 * time.Second
	// maxUnackedNamed bounds the sidecars named in
	// HeaderUnacknowledgedSidecars.
	maxUnackedNamed = 20
	// maxSidecarID bounds the length of PDP-Sidecar-Id.
	maxSidecarID = 200
)

// errSidecarRequest is answered with 400: a malformed sidecar request.
var errSidecarRequest = errors.New("bad sidecar request")

// changesAnswer is the answer to a poll.
type changesAnswer struct {
	Seq           uint64 `json:"seq"`
	Epoch         string `json:"epoch"`
	LeaseMS       int64  `json:"lease_ms"`
	PolicyVersion string `json:"policy_version"`
}

// sidecarID reads the sidecar's id from its header.
func sidecarID(r *http.Request) (string, error) {
	id := r.Header.Get(SidecarIDHeader)
	if id == "" || len(id) > maxSidecarID {
		return "", fmt.Errorf("%w: the %s header is required (at most %d characters)", errSidecarRequest, SidecarIDHeader, maxSidecarID)
	}
	return id, nil
}

// pollChanges answers GET ChangesPath.
func (s *Server) pollChanges(c echo.Context) error {
	arrived := time.Now()
	r := c.Request()
	app, err := s.keys.authenticate(r)
	if err != nil {
		return err
	}
	id, err := sidecarID(r)
	if err != nil {
		return err
	}
	q := c.QueryParams()
	var after uint64
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 64); err != nil {
			return fmt.Errorf("%w: after=%q: want a sequence number", errSidecarRequest, v)
		}
	}
	wait := DefaultChangeWait
	if v := q.Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 {
			return fmt.Errorf("%w: wait=%q: want a duration such as 1s or 500ms", errSidecarRequest, v)
		}
		wait = min(wait, MaxChangeWait)
	}
	hold, changed, closed, err := s.changes.Poll(app, id, after, q.Get("epoch"), arrived)
	if err != nil {
		return err
	}
	if hold && wait > 0 {
		// A held poll may outlast the server's write timeout.
		_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(wait + s.cfg.WriteTimeout))
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-closed:
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	seq := s.changes.Seq()
	s.changes.Told(app, id, seq)
	return writeJSON(c, http.StatusOK, changesAnswer{
		Seq: seq, Epoch: s.changes.Epoch(), LeaseMS: s.changes.Lease().Milliseconds(),
		PolicyVersion: s.policies.Status().Active.Hash,
	})
}

// publish tells the change feed about a change that has been applied (and
// recorded) and is about to be answered, and waits for the sidecars. A
// failure (the caller went away before they acknowledged) is logged and the
// change is still answered: it stands, and every sidecar's lease bounds
// how long it may still serve an answer cached before it.
func (s *Server) publish(c echo.Context, reason string) {
	if s.changes == nil {
		return
	}
	// Waiting may take a lease: keep the answer within the write timeout.
	_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(2*s.changes.Lease() + s.cfg.WriteTimeout))
	ctx := c.Request().Context()
	p, err := s.changes.PublishReport(ctx, reason)
	if err != nil {
		s.log.WarnContext(ctx, "change not acknowledged by every sidecar; their leases bound it",
			"reason", reason, "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "error", err.Error())
	}
	if len(p.Unacknowledged) > 0 {
		c.Response().Header().Set(HeaderUnacknowledgedSidecars, unackedHeader(p.Unacknowledged))
		s.log.InfoContext(ctx, "change answered without the acknowledgement of some sidecars: their leases ran out",
			"reason", reason, "seq", p.Seq, "sidecars", len(p.Unacknowledged))
	}
}

// unackedHeader lists sidecars as application/id, comma-separated, at most
// maxUnackedNamed of them and then "+N more".
func unackedHeader(refs []changefeed.SidecarRef) string {
	var b strings.Builder
	for i, r := range refs {
		if i == maxUnackedNamed {
			fmt.Fprintf(&b, ", +%d more", len(refs)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(r.String())
	}
	return b.String()
}
