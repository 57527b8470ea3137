package relations

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
)

// MaxLineLength bounds one line of a relationships text stream.
const MaxLineLength = 1 << 20

// LineError is a problem with one line of a relationships text stream: a
// line that does not parse, or that is too long.
type LineError struct {
	Line int // 1-based
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// ScanRelationships reads relationships one per line (see
// ParseRelationship) as they come, holding one line at a time: blank lines
// and lines starting with # or // are skipped. It yields each relationship
// with a nil error; at the first line that does not parse it yields a
// *LineError naming the line and stops, and so it does for a read error
// (which is not a LineError).
func ScanRelationships(r io.Reader) iter.Seq2[Relationship, error] {
	return func(yield func(Relationship, error) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), MaxLineLength)
		n := 0
		for sc.Scan() {
			n++
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 || line[0] == '#' || bytes.HasPrefix(line, []byte("//")) {
				continue
			}
			rel, err := ParseRelationship(string(line))
			if err != nil {
				yield(Relationship{}, &LineError{Line: n, Err: err})
				return
			}
			if !yield(rel, nil) {
				return
			}
		}
		switch err := sc.Err(); {
		case errors.Is(err, bufio.ErrTooLong):
			yield(Relationship{}, &LineError{Line: n + 1, Err: fmt.Errorf("longer than %d bytes", MaxLineLength)})
		case err != nil:
			yield(Relationship{}, fmt.Errorf("relations: read after line %d: %w", n, err))
		}
	}
}
