package delegation

import (
	"errors"
	"fmt"

	"github.com/ciampdp/pdp/pdp/reason"
)

// Sentinel errors. The HTTP layer maps ErrNotFound to 404, ErrConflict (and
// ErrExists, which matches it) to 409, ErrForbidden to 403, any other
// *RuleError to 422 and ErrDecode to 400.
var (
	// ErrNotFound: no delegation has the id.
	ErrNotFound = errors.New("delegation not found")
	// ErrConflict: the record changed since it was read (its version is not
	// the one the update expected).
	ErrConflict = errors.New("delegation changed concurrently")
	// ErrExists: Create with an id that is taken. It matches ErrConflict.
	ErrExists = fmt.Errorf("%w: id already exists", ErrConflict)
	// ErrForbidden is matched (errors.Is) by a *RuleError with CodeForbidden.
	ErrForbidden = errors.New("forbidden")
	// ErrProjection: the change was stored, but writing it to the
	// relationship store failed. The change stands; Reconcile repairs the
	// projection.
	ErrProjection = errors.New("delegation stored, but projecting it to the relationship store failed")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("delegation store closed")
	// ErrCorrupt: a record in the middle of a store file cannot be read.
	ErrCorrupt = errors.New("delegation store file corrupt")
	// ErrDecode: a request body is not a valid offer.
	ErrDecode = errors.New("bad delegation offer")
)

// Codes of RuleError.
const (
	// CodeInvalid: the request is malformed or inconsistent.
	CodeInvalid = reason.Invalid
	// CodeForbidden: the actor may not make this change.
	CodeForbidden = reason.Forbidden
	// CodeInvalidTransition: the change is not allowed from the current
	// status.
	CodeInvalidTransition = reason.InvalidTransition
	// CodeExceedsParent: a sub-delegation would grant more than its parent.
	CodeExceedsParent = reason.ExceedsParent
	// CodeParentInactive: a sub-delegation's parent (or an ancestor) is not
	// in force.
	CodeParentInactive = reason.ParentInactive
)

// RuleError is a change the rules refuse. Msg says exactly what is wrong and
// is safe to show to the client.
type RuleError struct {
	Code string
	Msg  string
}

func (e *RuleError) Error() string { return e.Msg }

// Is makes a RuleError with CodeForbidden match ErrForbidden.
func (e *RuleError) Is(target error) bool {
	return target == ErrForbidden && e.Code == CodeForbidden
}

func ruleErr(code, format string, args ...any) *RuleError {
	return &RuleError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *RuleError {
	return ruleErr(CodeInvalid, format, args...)
}

func forbidden(format string, args ...any) *RuleError {
	return ruleErr(CodeForbidden, format, args...)
}
