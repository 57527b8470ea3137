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
// Empty lines between notes are allowed. A checkpoint's text is three
// lines (TreeHead.text): text lines before them, up to the empty line,
// are a chunk of their own (a note torn at a line's end), so the note
// after a torn one is still found.

// ErrWitnessFile is returned for a witness file that does not parse.
var ErrWitnessFile = errors.New("trail: malformed witness file")

// What CheckWitnessed finds wrong with a witnessed checkpoint.
var (
	ErrWitnessSignature = errors.New("signature does not check with the verifier key")
	ErrWitnessOrigin    = errors.New("origin is not the trail's")
	ErrWitnessCut       = errors.New("records were cut")
	ErrWitnessChanged   = errors.New("records were changed")
)

// WitnessedCheckpoint is one signed checkpoint of a witness file, or a
// chunk of it that is not one (Err set).
type WitnessedCheckpoint struct {
	Signed []byte // the signed note, as 'pdp log checkpoint' prints it (the chunk's bytes when Err is set)
	Line   int    // the line it starts on, from 1
	Index  int    // its position in the file, from 1
	End    int    // the byte offset just past it
	Err    error  // why the chunk is not a well-formed checkpoint (wraps ErrWitnessFile); nil for one
}

// sigPrefix starts every signature line of a signed note.
const sigPrefix = "\u2014 "

// headLines is the number of lines of a checkpoint's text (TreeHead.text).
const headLines = 3

// ParseWitnessFile splits data into the signed checkpoints it holds, in
// file order. Each must be a well-formed checkpoint note (its signatures
// are not checked here: CheckWitnessed does that). A chunk that is not
// one (a note cut short by a torn write, text between notes) is an entry
// with Err naming its line, and parsing goes on at the next note, so the
// checkpoints before and after it are still there to check. The error is
// for a file with nothing but empty lines in it.
func ParseWitnessFile(data []byte) ([]WitnessedCheckpoint, error) {
	lines := strings.SplitAfter(string(data), "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	var out []WitnessedCheckpoint
	i, off := 0, 0 // the line, and the byte offset it starts at
	next := func() { off += len(lines[i]); i++ }
	for i < len(lines) {
		if lines[i] == "\n" { // between notes
			next()
			continue
		}
		start, startOff := i, off
		chunk := func(err error) {
			c := WitnessedCheckpoint{Signed: []byte(string(data[startOff:off])), Line: start + 1, Index: len(out) + 1, End: off}
			if err != nil {
				c.Err = fmt.Errorf("%w: line %d: %w", ErrWitnessFile, start+1, err)
			}
			out = append(out, c)
		}
		if strings.HasPrefix(lines[i], sigPrefix) {
			for i < len(lines) && strings.HasPrefix(lines[i], sigPrefix) {
				next()
			}
			chunk(errors.New("a signature line with no checkpoint text before it"))
			continue
		}
		for i < len(lines) && lines[i] != "\n" && !strings.HasPrefix(lines[i], sigPrefix) {
			next()
		}
		if i < len(lines) && lines[i] == "\n" && i-start > headLines {
			// A checkpoint's text is its origin, size and root lines: what
			// comes before them (a note torn at a line's end, say) is a
			// chunk of its own.
			cut := off
			for j := i - 1; j >= i-headLines; j-- {
				cut -= len(lines[j])
			}
			end := i
			i, off = i-headLines, cut
			chunk(errors.New("text that is not part of a checkpoint (a note cut short?)"))
			start, startOff = i, off
			for i < end {
				next()
			}
		}
		if i < len(lines) && lines[i] != "\n" { // a signature line
			for i < len(lines) && strings.HasPrefix(lines[i], sigPrefix) {
				next()
			}
			chunk(fmt.Errorf("a signature line where the checkpoint text goes on (no empty line before the signatures)"))
			continue
		}
		if i == len(lines) {
			chunk(cutShort(data, "the checkpoint starting here has no signature"))
			continue
		}
		next() // the empty line
		sigs := i
		for i < len(lines) && strings.HasPrefix(lines[i], sigPrefix) {
			next()
		}
		if i == sigs {
			if i == len(lines)-1 && !strings.HasSuffix(lines[i], "\n") {
				next() // a signature line torn before its prefix is whole
			}
			chunk(cutShort(data[:off], "the checkpoint starting here has no signature line after its empty line"))
			continue
		}
		signed := data[startOff:off]
		var err error
		switch {
		case signed[len(signed)-1] != '\n':
			err = errors.New("the last line is cut short (no newline)")
		default:
			if _, err = unverifiedHead(signed); err == nil {
				// The note's own parser must agree on where it ends, or the
				// signature check would see another note than this split did.
				if _, err = note.Open(signed, nil); isUnverified(err) {
					err = nil
				}
			}
		}
		chunk(err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no checkpoint in it", ErrWitnessFile)
	}
	return out, nil
}

// cutShort is msg, said of a chunk running to the end of data, which tells
// when the last line is cut short too.
func cutShort(data []byte, msg string) error {
	if len(data) > 0 && data[len(data)-1] != '\n' {
		return fmt.Errorf("%s (the last line is cut short: no newline)", msg)
	}
	return errors.New(msg)
}

// WitnessTail is the byte offset just past the last well-formed
// checkpoint of a witness file (0 if it has none): what is beyond it is a
// torn append, or not a witness file's.
func WitnessTail(cps []WitnessedCheckpoint) int {
	for i := len(cps) - 1; i >= 0; i-- {
		if cps[i].Err == nil {
			return cps[i].End
		}
	}
	return 0
}

func isUnverified(err error) bool {
	var u *note.UnverifiedNoteError
	return errors.As(err, &u)
}

// CheckWitnessed checks a witnessed checkpoint against a trail of size
// records whose stored hashes stored reads: its signature under
// verifierKey (or any of the keys: Verifiers), its origin, that the trail holds at least its size of
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
	vs, err := Verifiers(verifierKey)
	if err != nil {
		return TreeHead{}, err
	}
	n, err := note.Open(signed, vs)
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
	if _, err := Verifiers(verifierKey); err != nil {
		return nil, err
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
