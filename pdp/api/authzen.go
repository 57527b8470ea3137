package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/authzen"
	"github.com/labstack/echo/v4"
)

// errTooLarge is answered with 413.
var errTooLarge = errors.New("request body too large")

// tooManyError is a request over a count limit (batch items), answered
// with 413 and its message.
type tooManyError struct{ msg string }

func (e *tooManyError) Error() string { return e.msg }

// bodyHandler handles an AuthZEN POST whose caller is authenticated and
// whose body has been read and checked to be declared as JSON.
type bodyHandler func(c echo.Context, app string, body []byte) error

// authzenBody is the shared front of every AuthZEN POST endpoint (and of
// the noop baseline): authenticate, check the Content-Type, read the body
// under the limit, then call h. The body buffer is reused after h returns.
func (s *Server) authzenBody(h bodyHandler) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		app, err := s.keys.authenticate(r)
		if err != nil {
			return err
		}
		if err := checkContentType(r.Header.Get(echo.HeaderContentType)); err != nil {
			return err
		}
		if token := r.Header.Get(ConsistencyTokenHeader); token != "" {
			if err := checkConsistencyToken(token); err != nil {
				return err
			}
			r = r.WithContext(pdp.WithConsistencyToken(r.Context(), token))
			c.SetRequest(r)
		}
		buf, err := s.readBody(r)
		if err != nil {
			return err
		}
		defer putBuffer(buf)
		return h(c, app, buf.Bytes())
	}
}

// ConsistencyTokenHeader names the request header of the AuthZEN endpoints
// that asks for facts at least as fresh as a revision token: the
// "revision" a delegation change answered (a SpiceDB ZedToken), passed on
// unchanged. Without it decisions read facts at least as fresh as every
// change this PDP made or has seen.
const ConsistencyTokenHeader = "PDP-Consistency-Token"

// maxConsistencyToken bounds the token's length; ZedTokens are well under.
const maxConsistencyToken = 1024

// checkConsistencyToken checks a token's shape only (ZedTokens are opaque:
// base64 text): the relationship store accepts any string, costing one
// revision barrier for a token it has not seen, so garbage is refused here.
func checkConsistencyToken(token string) error {
	bad := len(token) > maxConsistencyToken
	for i := 0; i < len(token) && !bad; i++ {
		switch ch := token[i]; {
		case ch >= 'A' && ch <= 'Z', ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9',
			ch == '+', ch == '/', ch == '=', ch == '-', ch == '_':
		default:
			bad = true
		}
	}
	if bad {
		return &authzen.RequestError{Message: ConsistencyTokenHeader + " is malformed: want the revision token a change answered, unchanged (base64 text, at most 1024 characters)"}
	}
	return nil
}

// checkContentType accepts application/json, with parameters; a charset, if
// given, must be UTF-8.
func checkContentType(ct string) error {
	if ct == echo.MIMEApplicationJSON {
		return nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != echo.MIMEApplicationJSON {
		return &authzen.RequestError{Message: "Content-Type must be application/json", Err: err}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return &authzen.RequestError{Message: "Content-Type charset must be utf-8"}
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer keeps the odd large body from pinning memory in the pool.
const maxPooledBuffer = 64 << 10

func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuffer {
		bufPool.Put(b)
	}
}

// readBody reads the whole body into a pooled buffer, or fails with
// errTooLarge once it exceeds the limit (by Content-Length or by reading).
func (s *Server) readBody(r *http.Request) (*bytes.Buffer, error) {
	limit := s.cfg.BodyLimit
	if r.ContentLength > limit {
		return nil, errTooLarge
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	if err != nil {
		putBuffer(buf)
		return nil, &authzen.RequestError{Message: "could not read the request body", Err: err}
	}
	if n > limit {
		putBuffer(buf)
		return nil, errTooLarge
	}
	return buf, nil
}

// evaluation answers POST {base}/access/v1/evaluation.
func (s *Server) evaluation(c echo.Context, app string, body []byte) error {
	req, err := authzen.DecodeEvaluation(body)
	if err != nil {
		return err
	}
	return s.decideOne(c, app, req)
}

func (s *Server) decideOne(c echo.Context, app string, req pdp.Request) error {
	req.Application = app
	ctx := c.Request().Context()
	sidecar := c.Request().Header.Get(SidecarIDHeader)
	if s.changes != nil && sidecar != "" {
		// Before deciding: a change published after this was applied
		// before this decision, and one published before it waits for
		// the sidecar, which may cache the answer.
		s.changes.Asked(app, sidecar)
	}
	d, err := s.decider.Decide(ctx, req)
	if err != nil {
		return fmt.Errorf("decide: %w", err)
	}
	s.record(ctx, app, &d)
	if s.ingest != nil && sidecar != "" {
		// The sidecar may repeat it from its cache: its records will name it.
		s.ingest.NoteDecision(d.ID, app, d.Time, d.Allowed, req.Action.Name)
	}
	return writeJSON(c, http.StatusOK, authzen.NewDecisionResponse(d, false))
}

// evaluations answers POST {base}/access/v1/evaluations: like a single
// evaluation when there are no items, else one decision per item, in order,
// cut short as the requested semantic says.
func (s *Server) evaluations(c echo.Context, app string, body []byte) error {
	b, err := authzen.DecodeEvaluations(body)
	if err != nil {
		return err
	}
	if n := len(b.Requests); n > s.cfg.MaxBatch {
		return &tooManyError{fmt.Sprintf("evaluations holds %d items: at most %d per request (http.max_batch); split the batch", n, s.cfg.MaxBatch)}
	}
	if b.Single {
		return s.decideOne(c, app, b.Requests[0])
	}
	for i := range b.Requests {
		b.Requests[i].Application = app
	}
	ctx := c.Request().Context()
	ds, err := s.decider.DecideBatch(ctx, b.Requests)
	if err != nil {
		return fmt.Errorf("decide batch: %w", err)
	}
	if len(ds) != len(b.Requests) {
		return fmt.Errorf("decide batch: %d decisions for %d requests", len(ds), len(b.Requests))
	}
	for i := range ds {
		s.record(ctx, app, &ds[i])
	}
	ds = authzen.ApplySemantic(b.Semantic, ds)
	return writeJSON(c, http.StatusOK, authzen.NewEvaluationsResponse(ds, s.cfg.CompactBatch))
}

var noopAnswer = []byte(`{"decision":true}` + "\n")

// noop is the throughput baseline: the same front and decoding as an
// evaluation, and a constant answer instead of a decision.
func (s *Server) noop(c echo.Context, _ string, body []byte) error {
	if _, err := authzen.DecodeEvaluation(body); err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, noopAnswer)
}

// record counts a decision and logs it at Debug (never at Info: hot path).
func (s *Server) record(ctx context.Context, app string, d *pdp.Decision) {
	s.metrics.observe(app, d)
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.LogAttrs(ctx, slog.LevelDebug, "decision",
			slog.String("decision_id", d.ID),
			slog.String("application", app),
			slog.String("result", result(d.Allowed)),
			slog.Duration("duration", d.Duration))
	}
}

// jsonAppender is implemented by the AuthZEN answers, which encode
// themselves without reflection.
type jsonAppender interface {
	AppendJSON(dst []byte) []byte
}

// writeJSON encodes v into a pooled buffer and sends it with code.
func writeJSON(c echo.Context, code int, v any) error {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer putBuffer(buf)
	if a, ok := v.(jsonAppender); ok {
		buf.Write(a.AppendJSON(buf.AvailableBuffer()))
		buf.WriteByte('\n')
		return c.Blob(code, echo.MIMEApplicationJSON, buf.Bytes())
	}
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	return c.Blob(code, echo.MIMEApplicationJSON, buf.Bytes())
}
