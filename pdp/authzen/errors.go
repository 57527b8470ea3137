package authzen

import "strings"

// RequestError reports a request body that is not a valid AuthZEN request.
// HTTP layers answer it with 400 Bad Request and show Message to the client.
type RequestError struct {
	// Message is one line, safe to show to the client: it names the
	// offending member but never echoes request content.
	Message string
	// Err is the underlying cause, when there is one (for logs).
	Err error
}

func (e *RequestError) Error() string { return "authzen: bad request: " + e.Message }

func (e *RequestError) Unwrap() error { return e.Err }

// badRequest builds a RequestError, folding any line breaks out of msg so
// that the message stays one line.
func badRequest(msg string, cause error) *RequestError {
	if strings.ContainsAny(msg, "\r\n") {
		msg = strings.NewReplacer("\r", " ", "\n", " ").Replace(msg)
	}
	return &RequestError{Message: msg, Err: cause}
}
