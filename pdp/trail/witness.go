package trail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A witness file holds signed checkpoints kept outside the trail, as
// 'pdp log checkpoint >> FILE' on a schedule (or trail.witness_file)
// leaves them: signed notes one after another. A note is its text (the
// origin, size and root lines), an empty line, then one or more signature
// lines, each "— NAME SIGNATURE"; the next note starts at the first line
// after them that is not a signature line. An origin holds no white space
// (trail.origin), so a note's first line is never taken for a signature.
// Empty lines between notes are allowed.

// ErrWitnessFile is returned for a witness file that does not parse.
var ErrWitnessFile = errors.New("trail: malformed witness file")

// What CheckWitnessed finds wrong with a witnessed checkpoint.
var (
	ErrWitnessSignature = errors.New("signature does not check with the verifier key")
	ErrWitnessOrigin    = errors.New("origin is not the trail's")
	ErrWitnessCut       = errors.New("records were cut")
	ErrWitnessChanged   = errors.New("records were changed")
)

// WitnessedCheckpoint is one signed checkpoint of a witness file.
type WitnessedCheckpoint struct {
	Signed []byte // the signed note, as 'pdp log checkpoint' prints it
	Line   int    // the line it starts on, from 1
	Index  int    // its position in the file, from 1
}

// sigPrefix starts every signature line of a signed note.
const sigPrefix = "\u2014 "

// ParseWitnessFile splits data into the signed checkpoints it holds, in
// file order. Each must be a well-formed checkpoint note (its signatures
// are not checked here: CheckWitnessed does that). A file with no
// checkpoint, a note cut short or text between notes is an error naming
// the line.
func ParseWitnessFile(data []byte) ([]WitnessedCheckpoint, error) {
	if len(data) > 0 && data[len(data)-1] != '\n' {
		return nil, fmt.Errorf("%w: the last line is cut short (no newline)", ErrWitnessFile)
	}
	lines := strings.SplitAfter(string(data), "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	var out []WitnessedCheckpoint
	i := 0
	for i < len(lines) {
		if lines[i] == "\n" { // between notes
			i++
			continue
		}
		start := i
		if strings.HasPrefix(lines[i], sigPrefix) {
			return nil, fmt.Errorf("%w: line %d: a signature line with no checkpoint text before it", ErrWitnessFile, i+1)
		}
		for i < len(lines) && lines[i] != "\n" {
			if strings.HasPrefix(lines[i], sigPrefix) {
				return nil, fmt.Errorf("%w: line %d: a signature line where the checkpoint text of line %d goes on (no empty line before the signatures)", ErrWitnessFile, i+1, start+1)
			}
			i++
		}
		if i == len(lines) {
			return nil, fmt.Errorf("%w: line %d: the checkpoint starting here has no signature", ErrWitnessFile, start+1)
		}
		i++ // the empty line
		sigs := i
		for i < len(lines) && strings.HasPrefix(lines[i], sigPrefix) {
			i++
		}
		if i == sigs {
			return nil, fmt.Errorf("%w: line %d: the checkpoint starting on line %d has no signature line after its empty line", ErrWitnessFile, i+1, start+1)
		}
		signed := []byte(strings.Join(lines[start:i], ""))
		if _, err := unverifiedHead(signed); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrWitnessFile, start+1, err)
		}
		// The note's own parser must agree on where it ends, or the
		// signature check would see another note than this split did.
		if _, err := note.Open(signed, nil); err != nil && !isUnverified(err) {
			return nil, fmt.Errorf("%w: line %d: %w", ErrWitnessFile, start+1, err)
		}
		out = append(out, WitnessedCheckpoint{Signed: signed, Line: start + 1, Index: len(out) + 1})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no checkpoint in it", ErrWitnessFile)
	}
	return out, nil
}

func isUnverified(err error) bool {
	var u *note.UnverifiedNoteError
	return errors.As(err, &u)
}

// CheckWitnessed checks a witnessed checkpoint against a trail of size
// records whose stored hashes stored reads: its signature under
// verifierKey, its origin, that the trail holds at least its size of
// records, and that the trail's tree extends it (a consistency proof from
// the witnessed size to the current one, O(log size) hashes read). It
// returns the witnessed tree head; the error wraps ErrWitnessSignature,
// ErrWitnessOrigin, ErrWitnessCut or ErrWitnessChanged, or is another
// error when the stored hashes cannot be read.
//
// The stored hashes are the trail's own: Verify checks the records
// against them, this checks them against what the witness saw. Together
// they catch records rewritten with every hash above them and the
// trail's own checkpoints.
func CheckWitnessed(verifierKey, origin string, signed []byte, size uint64, stored tlog.HashReader) (TreeHead, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return TreeHead{}, fmt.Errorf("trail: verifier key: %w", err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return TreeHead{}, fmt.Errorf("%w (%v)", ErrWitnessSignature, err)
	}
	h, err := parseTreeHead(n.Text)
	if err != nil {
		return TreeHead{}, err
	}
	if h.Origin != origin {
		return h, fmt.Errorf("%w: %q, the trail's is %q", ErrWitnessOrigin, h.Origin, origin)
	}
	if h.Size > size {
		return h, fmt.Errorf("the trail has %s records; the witness saw %s: %w", count(size), count(h.Size), ErrWitnessCut)
	}
	if h.Size == 0 {
		if empty, _ := tlog.TreeHash(0, nil); h.Root != empty {
			return h, witnessError{ErrWitnessChanged, "a tree of 0 records with another root than the empty tree's"}
		}
		return h, nil
	}
	cur, err := tlog.TreeHash(int64(size), stored)
	if err != nil {
		return h, fmt.Errorf("trail: the tree of %d records: %w", size, err)
	}
	p, err := tlog.ProveTree(int64(size), int64(h.Size), stored)
	if err != nil {
		return h, fmt.Errorf("trail: consistency proof from %d to %d records: %w", h.Size, size, err)
	}
	if err := tlog.CheckTree(p, int64(size), cur, int64(h.Size), h.Root); err != nil {
		return h, witnessError{ErrWitnessChanged, fmt.Sprintf("the first %s records no longer hash to the witnessed root: records before %s were changed",
			count(h.Size), count(h.Size))}
	}
	return h, nil
}

// witnessError is a failure whose message says it all, and which is one
// of the ErrWitness errors.
type witnessError struct {
	is  error
	msg string
}

func (e witnessError) Error() string { return e.msg }
func (e witnessError) Unwrap() error { return e.is }

// count writes n with thousands separators: 1,000.
func count(n uint64) string {
	s := fmt.Sprint(n)
	var b bytes.Buffer
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// CheckWitnessed checks each signed checkpoint of witnessed against the
// log as CheckWitnessed (the function) does, with the side file's stored
// hashes: one error per checkpoint, nil for one that holds.
func (l *FileLog) CheckWitnessed(ctx context.Context, verifierKey string, witnessed [][]byte) ([]error, error) {
	if _, err := note.NewVerifier(verifierKey); err != nil {
		return nil, fmt.Errorf("trail: verifier key: %w", err)
	}
	size := l.Size()
	stored := l.sideReader(int64(size))
	out := make([]error, len(witnessed))
	for i, w := range witnessed {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		_, out[i] = CheckWitnessed(verifierKey, l.opts.Origin, w, size, stored)
	}
	return out, nil
}
