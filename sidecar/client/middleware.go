package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// Mapper maps an incoming request to the evaluation that guards it. The
// application supplies it (the gateway package offers one built from its
// route table). It may also return ErrSkip (no decision needed) or a
// *Rejection (answer without asking the PDP, for example 401 when the
// request carries no identity). Any other error answers 500.
type Mapper func(r *http.Request) (Request, error)

// ErrSkip, returned by a Mapper, lets the request through unchecked.
var ErrSkip = errors.New("client: no decision needed")

// Rejection, returned by a Mapper, answers the request without a PDP
// decision, with the middleware's JSON body.
type Rejection struct {
	// Status is the HTTP status (401, 403, …).
	Status int
	// Reasons are reason codes for the body.
	Reasons []string
	// DecisionID, if set, goes into the body and the X-Decision-Id header.
	DecisionID string
	// Challenge is the WWW-Authenticate value of a 401 (default "Bearer").
	Challenge string
	// Err is the cause, for logs.
	Err error
}

func (r *Rejection) Error() string {
	msg := "client: request rejected: " + http.StatusText(r.Status)
	if r.Err != nil {
		msg += ": " + r.Err.Error()
	}
	return msg
}

func (r *Rejection) Unwrap() error { return r.Err }

type decisionKey struct{}

// DecisionFrom returns the decision the middleware made for the request
// whose context is ctx.
func DecisionFrom(ctx context.Context) (Decision, bool) {
	d, ok := ctx.Value(decisionKey{}).(Decision)
	return d, ok
}

// WithDecision returns a context carrying d, as the middleware passes it to
// the next handler (useful in tests of such handlers).
func WithDecision(ctx context.Context, d Decision) context.Context {
	return context.WithValue(ctx, decisionKey{}, d)
}

// HeaderDecisionID is set to the decision id on the refusals the
// middleware writes.
const HeaderDecisionID = "X-Decision-Id"

// ErrorBody is the JSON body of the middleware's refusals:
//
//	{"error":"forbidden","reasons":["delegation_expired"],"decision_id":"…"}
//
// error is "forbidden" (403), "unauthorized" (401), "unavailable" (503:
// the PDP could not be asked or did not answer) or "internal_error" (500).
type ErrorBody struct {
	Error       string   `json:"error"`
	Reasons     []string `json:"reasons"`
	Obligations []string `json:"obligations,omitempty"`
	DecisionID  string   `json:"decision_id,omitempty"`
}

// Middleware enforces the PDP's decisions: for each request it asks m for
// the evaluation, asks the PDP, and then
//
//   - allowed: calls next, with the Decision in the request context
//     (DecisionFrom);
//   - denied: answers 403 with ErrorBody (reasons, obligations, decision id);
//   - PDP unreachable, timed out or failing: answers 503 (fail closed);
//   - the PDP rejected the request itself (400, 413: a mapping bug): 500.
func Middleware(c *Client, m Mapper) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			req, err := m(r)
			if err != nil {
				var rej *Rejection
				switch {
				case errors.Is(err, ErrSkip):
					next.ServeHTTP(w, r)
				case errors.As(err, &rej):
					c.log.DebugContext(ctx, "request rejected by mapper", "status", rej.Status, "err", err)
					writeRejection(w, rej)
				default:
					c.log.ErrorContext(ctx, "mapping request to an evaluation failed", "path", r.URL.Path, "err", err)
					writeBody(w, http.StatusInternalServerError, ErrorBody{Error: "internal_error", Reasons: []string{}})
				}
				return
			}
			d, err := c.Evaluate(ctx, req)
			if err != nil {
				status, code := http.StatusServiceUnavailable, "unavailable"
				if errors.Is(err, ErrBadRequest) || errors.Is(err, ErrTooLarge) {
					status, code = http.StatusInternalServerError, "internal_error"
				}
				c.log.ErrorContext(ctx, "no decision; refusing the request", "path", r.URL.Path, "status", status, "err", err)
				writeBody(w, status, ErrorBody{Error: code, Reasons: []string{}})
				return
			}
			if !d.Allowed {
				c.log.DebugContext(ctx, "denied", "decision_id", d.DecisionID, "reasons", d.Reasons)
				if d.DecisionID != "" {
					w.Header().Set(HeaderDecisionID, d.DecisionID)
				}
				reasons := d.Reasons
				if reasons == nil {
					reasons = []string{}
				}
				writeBody(w, http.StatusForbidden, ErrorBody{Error: "forbidden", Reasons: reasons,
					Obligations: d.Obligations, DecisionID: d.DecisionID})
				return
			}
			next.ServeHTTP(w, r.WithContext(WithDecision(ctx, d)))
		})
	}
}

func writeRejection(w http.ResponseWriter, rej *Rejection) {
	status := rej.Status
	if status < 400 || status > 599 {
		status = http.StatusForbidden
	}
	code := "forbidden"
	switch status {
	case http.StatusUnauthorized:
		code = "unauthorized"
		challenge := rej.Challenge
		if challenge == "" {
			challenge = "Bearer"
		}
		w.Header().Set("WWW-Authenticate", challenge)
	case http.StatusServiceUnavailable:
		code = "unavailable"
	}
	if rej.DecisionID != "" {
		w.Header().Set(HeaderDecisionID, rej.DecisionID)
	}
	reasons := rej.Reasons
	if reasons == nil {
		reasons = []string{}
	}
	writeBody(w, status, ErrorBody{Error: code, Reasons: reasons, DecisionID: rej.DecisionID})
}

func writeBody(w http.ResponseWriter, status int, body ErrorBody) {
	b, err := json.Marshal(body)
	if err != nil {
		b = []byte(`{"error":"internal_error","reasons":[]}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
