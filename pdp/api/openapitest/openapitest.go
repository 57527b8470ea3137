// Package openapitest checks HTTP traffic against the PDP's OpenAPI
// document (pdp/api/openapi.json) with kin-openapi: for tests only, so that
// the pdp binary does not link an OpenAPI library.
package openapitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Validator checks requests and responses against one document.
type Validator struct {
	router routers.Router
}

// New loads and validates doc (OpenAPI 3.1) and readies its router.
func init() {
	// A pushed Security Event Token (RFC 8935) is a compact JWS: the
	// document describes it as a string.
	openapi3filter.RegisterBodyDecoder("application/secevent+jwt", func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(body)
		return string(b), err
	})
}

func New(doc []byte) (*Validator, error) {
	t, err := openapi3.NewLoader().LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("openapitest: load: %w", err)
	}
	if err := t.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapitest: invalid document: %w", err)
	}
	r, err := legacy.NewRouter(t)
	if err != nil {
		return nil, fmt.Errorf("openapitest: router: %w", err)
	}
	return &Validator{router: r}, nil
}

// Exchange is one request and its answer, bodies read.
type Exchange struct {
	Request      *http.Request
	RequestBody  []byte
	Status       int
	Header       http.Header
	ResponseBody []byte
}

// wellKnown is the AuthZEN metadata path.
const wellKnown = "/.well-known/authzen-configuration"

// ErrUndocumented: a request the server answered with success has no
// operation in the document.
var ErrUndocumented = errors.New("no operation in the OpenAPI document")

// Check validates an exchange, as the document is a contract:
//
//   - every response of a documented operation matches one of its
//     documented responses (status and body; errors match the default
//     response);
//   - a request the server accepted (2xx) matches the operation's
//     parameters and request body. A refused request (4xx, 5xx) is not
//     checked: tests send invalid requests on purpose;
//   - a 2xx answer to a request no operation matches is ErrUndocumented.
//
// The AuthZEN endpoints may sit under a base path (http.base_path): a path
// with /access/v1/ after a prefix is checked without the prefix. The
// metadata's tenant takes the rest of the path, slashes included, which
// OpenAPI's one-segment parameters cannot say: it is checked as one.
func (v *Validator) Check(ctx context.Context, x Exchange) error {
	req := x.Request.Clone(ctx)
	if i := strings.Index(req.URL.Path, "/access/v1/"); i > 0 {
		req.URL.Path = req.URL.Path[i:]
		req.URL.RawPath = ""
	}
	if rest, ok := strings.CutPrefix(req.URL.Path, wellKnown+"/"); ok && strings.Contains(strings.Trim(rest, "/"), "/") {
		req.URL.Path = wellKnown + "/" + strings.ReplaceAll(strings.Trim(rest, "/"), "/", "_")
		req.URL.RawPath = ""
	}
	req.Body = io.NopCloser(bytes.NewReader(x.RequestBody))
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		if x.Status >= 200 && x.Status < 300 {
			return fmt.Errorf("%s %s answered %d: %w", x.Request.Method, x.Request.URL.Path, x.Status, ErrUndocumented)
		}
		return nil
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if x.Status >= 200 && x.Status < 300 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			return fmt.Errorf("%s %s: the request the server accepted (%d) breaks the OpenAPI document: %w\nrequest body: %s",
				x.Request.Method, x.Request.URL.Path, x.Status, err, clip(x.RequestBody))
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 x.Status,
		Header:                 x.Header,
		Body:                   io.NopCloser(bytes.NewReader(x.ResponseBody)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("%s %s: the %d response breaks the OpenAPI document: %w\nresponse body: %s",
			x.Request.Method, x.Request.URL.Path, x.Status, err, clip(x.ResponseBody))
	}
	return nil
}

func clip(b []byte) string {
	const max = 2000
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// Transport is an http.RoundTripper that checks every exchange with a
// server for which Checked says yes, and fails the round trip (with the
// reason) when it breaks the document. Base nil is
// http.DefaultTransport.
type Transport struct {
	Base      http.RoundTripper
	Validator *Validator
	// Checked says whether the server at host (host:port) is a PDP whose
	// traffic is checked; nil checks every server.
	Checked func(host string) bool
}

// RoundTrip sends req and checks the exchange.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if t.Checked != nil && !t.Checked(req.URL.Host) {
		return base.RoundTrip(req)
	}
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("openapitest: read request body: %w", err)
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	res, err := base.RoundTrip(req)
	if err != nil {
		return res, err
	}
	resBody, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("openapitest: read response body: %w", err)
	}
	res.Body = io.NopCloser(bytes.NewReader(resBody))
	if err := t.Validator.Check(req.Context(), Exchange{
		Request: req, RequestBody: reqBody, Status: res.StatusCode, Header: res.Header, ResponseBody: resBody,
	}); err != nil {
		return nil, fmt.Errorf("openapitest: %w", err)
	}
	return res, nil
}

// Middleware checks every exchange h answers and hands a broken one to
// fail (such as a test's Errorf).
func (v *Validator) Middleware(h http.Handler, fail func(format string, args ...any)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var reqBody []byte
		if r.Body != nil {
			reqBody, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(reqBody))
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		if err := v.Check(r.Context(), Exchange{
			Request: r, RequestBody: reqBody, Status: rec.status, Header: w.Header(), ResponseBody: rec.body.Bytes(),
		}); err != nil {
			fail("openapitest: %v", err)
		}
	})
}

// recorder passes a response through and keeps a copy.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wroteHeader = true
	r.body.Write(p)
	return r.ResponseWriter.Write(p)
}

// Flush passes a flush on (long polls flush).
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (write
// deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
