package client

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors. An *APIError matches the one of its status with
// errors.Is; ErrUnavailable also matches transport failures (connection
// refused, timeout), and ErrBadRequest requests the client refuses to send.
var (
	ErrBadRequest      = errors.New("pdp: bad request")               // 400
	ErrUnauthorized    = errors.New("pdp: unauthorized")              // 401: missing or wrong API key
	ErrForbidden       = errors.New("pdp: forbidden")                 // 403
	ErrTooLarge        = errors.New("pdp: request too large")         // 413
	ErrUnavailable     = errors.New("pdp: unavailable")               // 502, 503, 504, or unreachable
	ErrInvalidResponse = errors.New("pdp: invalid response from PDP") // a 200 whose body is not an AuthZEN answer
)

// APIError is an HTTP error answer of the PDP.
type APIError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Message is the server's one-line message ({"error": …}), or the
	// start of a body that is not that.
	Message string
	// RequestID is the X-Request-ID of the answer, to find it in the
	// PDP's log.
	RequestID string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("pdp: HTTP %d", e.StatusCode)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RequestID != "" {
		msg += " (request " + e.RequestID + ")"
	}
	return msg
}

// Is matches the sentinel error of e's status.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrTooLarge:
		return e.StatusCode == http.StatusRequestEntityTooLarge
	case ErrUnavailable:
		return e.StatusCode == http.StatusBadGateway || e.StatusCode == http.StatusServiceUnavailable ||
			e.StatusCode == http.StatusGatewayTimeout
	}
	return false
}
