package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// changing readies a change call (delegation, consent): the service
// publishes the change to the feed and waits for the sidecars before it
// returns, so the answer's write deadline is extended, and the context
// returned collects the sidecars that did not acknowledge. Call done after
// the service returned and before the answer is written (or an error
// returned): it names them in HeaderUnacknowledgedSidecars.
//
// A change once begun is carried through even when the client hangs up:
// its context keeps the request's values but not its cancellation (a
// store write cancelled mid-commit would leave its outcome unknown, and
// the trail would say "not applied" of a change the store may hold),
// bounded by the time the answer may take.
func (s *Server) changing(c echo.Context) (ctx context.Context, done func(), err error) {
	bound := s.changeBound()
	ctx, cancel, ok := s.detach(c.Request().Context(), bound)
	if !ok {
		return nil, nil, errShuttingDown
	}
	if s.changes == nil {
		return ctx, cancel, nil
	}
	_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(bound))
	ctx, report := changefeed.WithReport(ctx)
	return ctx, func() {
		defer cancel()
		if refs := report.Unacknowledged(); len(refs) > 0 {
			c.Response().Header().Set(HeaderUnacknowledgedSidecars, unackedHeader(slices.Compact(refs)))
			s.log.InfoContext(ctx, "change answered without the acknowledgement of some sidecars: their leases ran out",
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID), "seq", report.Seq(), "sidecars", len(refs))
		}
	}, nil
}

// changeBound is how long a change may take: the write timeout, and with
// a change feed the sidecars' acknowledgements (with replicas, a replica's
// lease: two sidecar leases) on top.
func (s *Server) changeBound() time.Duration {
	bound := s.cfg.WriteTimeout
	if bound <= 0 {
		bound = DefaultWriteTimeout
	}
	if s.changes != nil {
		bound += 3 * s.changes.Lease()
	}
	return bound
}

// detached is ctx without its cancellation, ended after bound (or the
// default write timeout when bound is 0).
func detached(ctx context.Context, bound time.Duration) (context.Context, context.CancelFunc) {
	if bound <= 0 {
		bound = DefaultWriteTimeout
	}
	return context.WithTimeout(context.WithoutCancel(ctx), bound)
}

// detach is detached, counted until its cancel is called: Serve waits for
// the changes carried through after a shutdown that gave up on their
// requests, so that the stores and the trail are not closed under them.
// A change is counted at most detachGrace past its bound (a handler that
// panicked before calling cancel is not waited for longer; one that is
// still unwinding at its deadline — writing its "not applied" record — is).
// Once that wait has begun no change begins: ok is false, and the caller
// answers without calling the service.
func (s *Server) detach(ctx context.Context, bound time.Duration) (_ context.Context, _ context.CancelFunc, ok bool) {
	if bound <= 0 {
		bound = DefaultWriteTimeout
	}
	s.detachMu.Lock()
	if s.detachShut {
		s.detachMu.Unlock()
		return nil, nil, false
	}
	s.detachedWG.Add(1)
	s.detachMu.Unlock()
	ctx, cancel := detached(ctx, bound)
	var once sync.Once
	release := func() { once.Do(s.detachedWG.Done) }
	t := time.AfterFunc(bound+detachGrace, release)
	return ctx, func() {
		cancel()
		t.Stop()
		release()
	}, true
}

// detachGrace is how long past its bound a change is still waited for at
// shutdown: what a change does once its deadline passed (a "not applied"
// record, bounded by 10 s) must not find the trail closed. A variable for
// the tests.
var detachGrace = 15 * time.Second

// errShuttingDown refuses a change that came after the server stopped
// waiting for changes (503: nothing was changed).
var errShuttingDown = errors.New("the PDP is shutting down, so nothing was changed; send it again")

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
