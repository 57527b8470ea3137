package consent

import (
	"errors"
	"fmt"

	"github.com/ciampdp/pdp/pdp/reason"
)

// Sentinel errors. The HTTP layer maps ErrNotFound to 404, ErrConflict (and
// ErrExists, which matches it) to 409, ErrForbidden to 403, any other
// *RuleError to 422 and ErrDecode to 400. ErrNoRegistry, ErrStale and store
// failures are the server's (503/500): a decision that meets one must deny.
var (
	// ErrNotFound: no event (or grant) has the id.
	ErrNotFound = errors.New("consent not found")
	// ErrConflict: the ledger changed under the request.
	ErrConflict = errors.New("consent ledger changed concurrently")
	// ErrExists: Append with an event id that is taken. It matches
	// ErrConflict.
	ErrExists = fmt.Errorf("%w: event id already exists", ErrConflict)
	// ErrForbidden is matched (errors.Is) by a *RuleError with CodeForbidden.
	ErrForbidden = errors.New("forbidden")
	// ErrClosed: the store or the ledger is closed.
	ErrClosed = errors.New("consent ledger closed")
	// ErrCorrupt: a line in the middle of a ledger file cannot be read, or
	// its position does not follow the one before.
	ErrCorrupt = errors.New("consent ledger file corrupt")
	// ErrDecode: a request body is not a valid consent request.
	ErrDecode = errors.New("bad consent request")
	// ErrNoRegistry: no purposes registry is active; every write is refused
	// and no decision can be made.
	ErrNoRegistry = errors.New("consent: no purposes registry is active")
	// ErrStale: CheckAt was asked for a position the ledger does not reach.
	ErrStale = errors.New("consent: the ledger has not reached the requested position")
)

// Codes of RuleError.
const (
	// CodeInvalid: the request is malformed or inconsistent.
	CodeInvalid = reason.Invalid
	// CodeForbidden: the calling application may not do this (403).
	CodeForbidden = reason.Forbidden
	// CodeNotFound: the grant named does not exist (404).
	CodeNotFound = reason.NotFound
	// CodeUnknownPurpose: the registry has no such purpose.
	CodeUnknownPurpose = reason.UnknownPurpose
	// CodeNoRule: the purpose has no rule for the jurisdiction.
	CodeNoRule = reason.NoRule
	// CodeNotConsent: the purpose is processed on another legal basis in
	// the jurisdiction: there is no consent to record.
	CodeNotConsent = reason.NotConsent
	// CodeTooLong: the grant would outlive the purpose's max_validity.
	CodeTooLong = reason.ExceedsMaxValidity
	// CodeNoDelegation: a representative acts without a delegation in
	// force.
	CodeNoDelegation = reason.NoDelegation
	// CodeEnded: the grant (or every grant of the purpose) has already
	// ended.
	CodeEnded = reason.AlreadyEnded
	// CodeOutOfScope: a representative acts under a delegation whose scope
	// does not reach the purpose (Purpose.RepresentableBy); 403.
	CodeOutOfScope = reason.DelegationOutOfScope
)

// RuleError is a change the rules refuse; nothing was written. Msg says
// exactly what is wrong and is safe to show to the client.
type RuleError struct {
	Code string
	Msg  string
}

func (e *RuleError) Error() string { return e.Msg }

// Is makes a RuleError with CodeForbidden or CodeOutOfScope match
// ErrForbidden and one with CodeNotFound match ErrNotFound.
func (e *RuleError) Is(target error) bool {
	return (target == ErrForbidden && (e.Code == CodeForbidden || e.Code == CodeOutOfScope)) ||
		(target == ErrNotFound && e.Code == CodeNotFound)
}

func ruleErr(code, format string, args ...any) *RuleError {
	return &RuleError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *RuleError {
	return ruleErr(CodeInvalid, format, args...)
}
