package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// AuthZEN 1.0 endpoints, relative to the base URL.
const (
	EvaluationPath     = "/access/v1/evaluation"
	EvaluationsPath    = "/access/v1/evaluations"
	SearchSubjectPath  = "/access/v1/search/subject"
	SearchResourcePath = "/access/v1/search/resource"
	SearchActionPath   = "/access/v1/search/action"
)

// HeaderConsistencyToken carries a consistency token to the PDP.
const HeaderConsistencyToken = "PDP-Consistency-Token"

// Defaults of New.
const (
	DefaultTimeout   = 5 * time.Second
	DefaultUserAgent = "ciampdp-client/1"
	// maxResponseBytes bounds an answer (searches can be long).
	maxResponseBytes = 16 << 20
)

// Client calls a PDP's AuthZEN endpoints. Safe for concurrent use.
type Client struct {
	base      string
	hc        *http.Client
	apiKey    string
	timeout   time.Duration
	userAgent string
	log       *slog.Logger
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey sends key as "Authorization: Bearer <key>": the PDP knows the
// calling application from it.
func WithAPIKey(key string) Option { return func(c *Client) { c.apiKey = key } }

// WithHTTPClient uses hc instead of the client's own (which keeps up to 64
// idle connections to the PDP).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout bounds each call (default 5s); 0 leaves only the context's
// deadline.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithLogger sets the logger of the middleware's failures; nil discards.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// New returns a client of the PDP at baseURL (the AuthZEN
// policy_decision_point: scheme, host, and a path if the PDP serves under
// one). The endpoints are baseURL + /access/v1/….
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("client: base URL %q must be an absolute http(s) URL without query, fragment or user info", baseURL)
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"), timeout: DefaultTimeout, userAgent: DefaultUserAgent}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		c.hc = &http.Client{Transport: t}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.timeout < 0 {
		return nil, errors.New("client: timeout must not be negative")
	}
	return c, nil
}

type tokenKey struct{}

// WithConsistencyToken returns a context whose calls ask the PDP for
// decisions at least as fresh as token: an opaque revision the PDP handed
// out (for example when a delegation was revoked or a consent withdrawn).
// It is sent as the PDP-Consistency-Token header; the client never looks
// inside. A token on the request itself takes precedence.
func WithConsistencyToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, tokenKey{}, token)
}

// ConsistencyToken returns the token WithConsistencyToken put in ctx.
func ConsistencyToken(ctx context.Context) (string, bool) {
	t, ok := ctx.Value(tokenKey{}).(string)
	return t, ok && t != ""
}

// Evaluate asks one Access Evaluation. A deny is not an error: it is a
// Decision with Allowed false and its reasons.
func (c *Client) Evaluate(ctx context.Context, req Request) (Decision, error) {
	var w wireDecision
	if err := c.post(ctx, EvaluationPath, req.ConsistencyToken, req, &w); err != nil {
		return Decision{}, err
	}
	return w.decision()
}

// EvaluateBatch asks an Access Evaluations batch and returns one decision
// per answered item, in request order. With DenyOnFirstDeny or
// PermitOnFirstPermit the PDP stops at the first deny or permit, so fewer
// decisions than items may come back. A batch needs at least one item
// (use Evaluate otherwise).
func (c *Client) EvaluateBatch(ctx context.Context, b BatchRequest) ([]Decision, error) {
	if len(b.Evaluations) == 0 {
		return nil, fmt.Errorf("%w: a batch needs at least one evaluation", ErrBadRequest)
	}
	w := wireBatch{Evaluation: b.Defaults, Evaluations: b.Evaluations}
	if b.Semantic != "" {
		switch b.Semantic {
		case ExecuteAll, DenyOnFirstDeny, PermitOnFirstPermit:
		default:
			return nil, fmt.Errorf("%w: unknown evaluations semantic %q", ErrBadRequest, b.Semantic)
		}
		w.Options = &struct {
			Semantic Semantic `json:"evaluations_semantic"`
		}{b.Semantic}
	}
	var out struct {
		Evaluations *[]wireDecision `json:"evaluations"`
	}
	if err := c.post(ctx, EvaluationsPath, b.ConsistencyToken, w, &out); err != nil {
		return nil, err
	}
	if out.Evaluations == nil {
		return nil, fmt.Errorf("%w: batch answer has no evaluations array", ErrInvalidResponse)
	}
	items := *out.Evaluations
	if len(items) > len(b.Evaluations) {
		return nil, fmt.Errorf("%w: %d decisions for %d evaluations", ErrInvalidResponse, len(items), len(b.Evaluations))
	}
	ds := make([]Decision, len(items))
	for i := range items {
		d, err := items[i].decision()
		if err != nil {
			return nil, fmt.Errorf("evaluations[%d]: %w", i, err)
		}
		ds[i] = d
	}
	return ds, nil
}

// SearchSubjects returns the subjects of q.Subject.Type that may perform
// q.Action on q.Resource.
func (c *Client) SearchSubjects(ctx context.Context, q SearchRequest) (SearchResult[Entity], error) {
	w := q.wire()
	w.Subject = &Entity{Type: q.Subject.Type}
	return search[Entity](ctx, c, SearchSubjectPath, q.ConsistencyToken, w)
}

// SearchResources returns the resources of q.Resource.Type on which
// q.Subject may perform q.Action.
func (c *Client) SearchResources(ctx context.Context, q SearchRequest) (SearchResult[Entity], error) {
	w := q.wire()
	w.Resource = &Entity{Type: q.Resource.Type}
	return search[Entity](ctx, c, SearchResourcePath, q.ConsistencyToken, w)
}

// SearchActions returns the actions q.Subject may perform on q.Resource
// (q.Action is not sent).
func (c *Client) SearchActions(ctx context.Context, q SearchRequest) (SearchResult[ActionResult], error) {
	w := q.wire()
	w.Action = nil
	return search[ActionResult](ctx, c, SearchActionPath, q.ConsistencyToken, w)
}

func (q SearchRequest) wire() wireSearch {
	s, a, r := q.Subject, q.Action, q.Resource
	return wireSearch{Subject: &s, Action: &a, Resource: &r, Context: q.Context, Page: q.Page}
}

func search[T any](ctx context.Context, c *Client, path, token string, w wireSearch) (SearchResult[T], error) {
	var out wireSearchResult[T]
	if err := c.post(ctx, path, token, w, &out); err != nil {
		return SearchResult[T]{}, err
	}
	if out.Results == nil {
		return SearchResult[T]{}, fmt.Errorf("%w: search answer has no results array", ErrInvalidResponse)
	}
	return SearchResult[T]{Results: *out.Results, Page: out.Page}, nil
}

// decision converts a received Decision object.
func (w wireDecision) decision() (Decision, error) {
	if w.Decision == nil {
		return Decision{}, fmt.Errorf("%w: decision is missing or not a boolean", ErrInvalidResponse)
	}
	d := Decision{Allowed: *w.Decision}
	if len(w.Context) == 0 || string(w.Context) == "null" {
		return d, nil
	}
	var wc wireContext
	if err := json.Unmarshal(w.Context, &wc); err != nil {
		return Decision{}, fmt.Errorf("%w: context: %w", ErrInvalidResponse, err)
	}
	d.DecisionID, d.PolicyVersion, d.Message = wc.DecisionID, wc.PolicyVersion, wc.Message
	d.Policies, d.Reasons, d.Obligations = wc.Policies, wc.Reasons, wc.Obligations
	d.Delegations, d.DelegationStatus, d.Error = wc.Delegations, wc.DelegationStatus, wc.Error
	d.Context = w.Context
	return d, nil
}

// post sends body as JSON to path and decodes a 200 answer into out.
func (c *Client) post(ctx context.Context, path, token string, body, out any) error {
	if token == "" {
		token, _ = ConsistencyToken(ctx)
	}
	if !validToken(token) {
		return fmt.Errorf("%w: consistency token must be visible ASCII", ErrBadRequest)
	}
	buf, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("%w: encode request: %w", ErrBadRequest, err)
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(buf))
	if err != nil {
		return fmt.Errorf("pdp: build request: %w", err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	h.Set("User-Agent", c.userAgent)
	if c.apiKey != "" {
		h.Set("Authorization", "Bearer "+c.apiKey)
	}
	if token != "" {
		h.Set(HeaderConsistencyToken, token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: POST %s: %w", ErrUnavailable, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("%w: POST %s: read answer: %w", ErrUnavailable, path, err)
	}
	if res.StatusCode != http.StatusOK {
		return apiError(res, raw)
	}
	if len(raw) > maxResponseBytes {
		return fmt.Errorf("%w: answer larger than %d bytes", ErrInvalidResponse, maxResponseBytes)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%w: POST %s: %w", ErrInvalidResponse, path, err)
	}
	return nil
}

// apiError builds the error of a non-200 answer.
func apiError(res *http.Response, raw []byte) *APIError {
	e := &APIError{StatusCode: res.StatusCode, RequestID: res.Header.Get("X-Request-ID")}
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error != "" {
		e.Message = body.Error
	} else {
		msg := strings.TrimSpace(string(raw))
		if len(msg) > 200 {
			msg = strings.ToValidUTF8(msg[:200], "") + "…"
		}
		e.Message = strings.Map(func(r rune) rune {
			if r < ' ' {
				return ' '
			}
			return r
		}, msg)
	}
	return e
}

// validToken accepts the empty token and visible ASCII.
func validToken(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f {
			return false
		}
	}
	return true
}
