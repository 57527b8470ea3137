package policy

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoSchema is returned when a bundle has no Cedar schema file.
var ErrNoSchema = errors.New("no Cedar schema (*.cedarschema or *.cedarschema.json)")

// LoadError is one problem found while loading a bundle. It names the file,
// the line (0 when unknown) and the policy id when one applies.
type LoadError struct {
	File     string
	Line     int
	PolicyID string
	Err      error
}

func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.PolicyID != "" {
		fmt.Fprintf(&b, ": policy %q", e.PolicyID)
	}
	b.WriteString(": ")
	b.WriteString(strings.ReplaceAll(e.Err.Error(), "\n", "; "))
	return b.String()
}

func (e *LoadError) Unwrap() error { return e.Err }

// LoadErrors collects every problem of a bundle, so that an author sees all
// of them at once. Each line of Error() is one problem.
type LoadErrors []*LoadError

func (es LoadErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (es LoadErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
