package trail

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TreeHead is the text of a checkpoint: the origin line, the tree size, and
// the root hash (the C2SP tlog-checkpoint body).
type TreeHead struct {
	Origin string
	Size   uint64
	Root   tlog.Hash
}

// ErrBadCheckpoint is returned for a checkpoint that cannot be parsed.
var ErrBadCheckpoint = errors.New("trail: malformed checkpoint")

func (h TreeHead) text() string {
	return fmt.Sprintf("%s\n%d\n%s\n", h.Origin, h.Size, base64.StdEncoding.EncodeToString(h.Root[:]))
}

func parseTreeHead(text string) (TreeHead, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 || lines[0] == "" {
		return TreeHead{}, fmt.Errorf("%w: want origin, size and root lines", ErrBadCheckpoint)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || size > math.MaxInt64 {
		return TreeHead{}, fmt.Errorf("%w: size %q", ErrBadCheckpoint, lines[1])
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return TreeHead{}, fmt.Errorf("%w: root %q", ErrBadCheckpoint, lines[2])
	}
	return TreeHead{Origin: lines[0], Size: size, Root: root}, nil
}

// unverifiedHead parses a signed checkpoint's text without checking its
// signatures (note.Open does that where it matters).
func unverifiedHead(signed []byte) (TreeHead, error) {
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		return TreeHead{}, fmt.Errorf("%w: no signature block", ErrBadCheckpoint)
	}
	return parseTreeHead(string(signed[:i+1]))
}

// UnverifiedHead returns the tree head of a signed checkpoint without
// checking its signatures: for a store that reads back a checkpoint it
// wrote itself, or that Verify checks later. Use OpenCheckpoint for one
// that must be trusted.
func UnverifiedHead(signed []byte) (TreeHead, error) { return unverifiedHead(signed) }

// Sign signs h as a checkpoint (a signed note of its text) with s.
func (h TreeHead) Sign(s note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: h.text()}, s)
}

// Verifiers parses verifierKeys: one signed-note verifier key, or several
// separated by white space (a key holds none), as kept across a key
// rotation; a checkpoint signed by any of them checks.
func Verifiers(verifierKeys string) (note.Verifiers, error) {
	keys := strings.Fields(verifierKeys)
	if len(keys) == 0 {
		return nil, errors.New("trail: verifier key: none given")
	}
	var vs []note.Verifier
	seen := make(map[string]bool)
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("trail: verifier key: %w", err)
		}
		vs = append(vs, v)
	}
	return note.VerifierList(vs...), nil
}

// OpenCheckpoint checks a signed checkpoint against the verifier key (or
// keys: Verifiers) and returns its tree head.
func OpenCheckpoint(verifierKey string, signed []byte) (TreeHead, error) {
	vs, err := Verifiers(verifierKey)
	if err != nil {
		return TreeHead{}, err
	}
	n, err := note.Open(signed, vs)
	if err != nil {
		return TreeHead{}, fmt.Errorf("trail: checkpoint signature: %w", err)
	}
	return parseTreeHead(n.Text)
}

func (l *FileLog) loadCheckpoints() error {
	var firstBad error
	badFrames, lastBadIdx := 0, -1
	res, err := scanFrames(io.NewSectionReader(l.cpf, 0, math.MaxInt64), -1, func(i int, _ int64, payload []byte, bad error) error {
		var signed string
		if bad == nil {
			bad = json.Unmarshal(payload, &signed)
		}
		var head TreeHead
		if bad == nil {
			head, bad = unverifiedHead([]byte(signed))
		}
		if bad != nil {
			if firstBad == nil {
				firstBad = fmt.Errorf("checkpoint frame %d: %w", i, bad)
			}
			badFrames++
			lastBadIdx = i
			return nil
		}
		if len(l.cps) > 0 && head.Size < l.cps[len(l.cps)-1].head.Size {
			l.damage("checkpoint %d shrinks the tree to %d", i, head.Size)
		}
		l.cps = append(l.cps, signedHead{signed: []byte(signed), head: head})
		return nil
	})
	if err != nil {
		return err
	}
	// A checkpoint is written after the records it covers are durable, so a
	// torn last checkpoint is dropped: the next one replaces it.
	l.cpEnd = res.size
	cut := res.goodEnd
	if badFrames == 1 && lastBadIdx == res.frames-1 {
		cut, firstBad = res.lastOff, nil
	}
	if firstBad != nil {
		l.damage("%v", firstBad)
		return nil
	}
	if cut < res.size {
		if err := l.cpf.Truncate(cut); err != nil {
			return err
		}
		if err := l.cpf.Sync(); err != nil {
			return err
		}
		l.cpEnd = cut
	}
	return nil
}

// Checkpoint signs a tree head for the current size, appends it to the
// checkpoints file (fsynced) and returns it. If the tree has not grown since
// the latest checkpoint, that checkpoint is returned. Either way it is
// handed to the OnCheckpoint function.
func (l *FileLog) Checkpoint() ([]byte, error) {
	signed, err := l.checkpoint()
	if err == nil {
		if fn := l.cpHook.Load(); fn != nil {
			(*fn)(bytes.Clone(signed))
		}
	}
	return signed, err
}

// OnCheckpoint makes fn get every checkpoint Checkpoint returns (Run's,
// Close's, a caller's), after it is stored: a copy of the trail's
// checkpoints kept elsewhere (trail.witness_file) follows them without
// signing any of its own. fn must not block.
func (l *FileLog) OnCheckpoint(fn func(signed []byte)) { l.cpHook.Store(&fn) }

func (l *FileLog) checkpoint() ([]byte, error) {
	if l.opts.Signer == nil {
		return nil, ErrNoSigner
	}
	if l.damaged != nil {
		return nil, l.damaged
	}
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	if l.cpClosed {
		return nil, ErrClosed
	}
	size := int64(l.Size())
	if k := len(l.cps); k > 0 && int64(l.cps[k-1].head.Size) == size {
		return bytes.Clone(l.cps[k-1].signed), nil
	}
	// The records are durable (Append acked them); make the side file's
	// hashes for this prefix durable too before signing over them.
	if err := l.hashes.f.Sync(); err != nil {
		return nil, fmt.Errorf("trail: fsync side file: %w", err)
	}
	root, err := tlog.TreeHash(size, l.sideReader(size))
	if err != nil {
		return nil, fmt.Errorf("trail: tree hash: %w", err)
	}
	head := TreeHead{Origin: l.opts.Origin, Size: uint64(size), Root: root}
	signed, err := head.Sign(l.opts.Signer)
	if err != nil {
		return nil, fmt.Errorf("trail: sign checkpoint: %w", err)
	}
	payload, err := json.Marshal(string(signed))
	if err != nil {
		return nil, err
	}
	frame := appendFrame(nil, payload)
	if _, err := l.cpf.WriteAt(frame, l.cpEnd); err != nil {
		_ = l.cpf.Truncate(l.cpEnd) // the next checkpoint is written at cpEnd again
		return nil, fmt.Errorf("trail: write checkpoint: %w", err)
	}
	if err := l.cpf.Sync(); err != nil {
		_ = l.cpf.Truncate(l.cpEnd)
		return nil, fmt.Errorf("trail: fsync checkpoint: %w", err)
	}
	l.cpEnd += int64(len(frame))
	l.cps = append(l.cps, signedHead{signed: signed, head: head})
	return bytes.Clone(signed), nil
}

// Checkpoints returns every stored signed checkpoint, oldest first.
func (l *FileLog) Checkpoints() [][]byte {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	out := make([][]byte, len(l.cps))
	for i, c := range l.cps {
		out[i] = bytes.Clone(c.signed)
	}
	return out
}

// Run writes a checkpoint every CheckpointInterval while the tree grows,
// until ctx is done or the log closed (returning nil). A failed checkpoint
// (a full disk, say) does not end it: the next tick tries again, and
// LastCheckpointError reports the latest outcome. A damaged log, which can
// never be checkpointed, ends it with the reason.
func (l *FileLog) Run(ctx context.Context) error {
	t := time.NewTicker(l.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_, err := l.Checkpoint()
			switch {
			case errors.Is(err, ErrClosed):
				return nil
			case errors.Is(err, ErrDamaged), errors.Is(err, ErrNoSigner):
				return err
			}
			l.cpErr.Store(&err)
		}
	}
}

// LastCheckpointError is the outcome of Run's latest checkpoint: nil after
// a success.
func (l *FileLog) LastCheckpointError() error {
	if p := l.cpErr.Load(); p != nil {
		return *p
	}
	return nil
}

// sideReader reads the stored hashes of a tree of the given size from the
// side file. Hashes below StoredHashCount(size) are immutable once written.
func (l *FileLog) sideReader(size int64) tlog.HashReader {
	limit := tlog.StoredHashCount(size)
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, idx := range indexes {
			if idx < 0 || idx >= limit {
				return nil, fmt.Errorf("trail: stored hash %d beyond tree of size %d", idx, size)
			}
			if _, err := l.hashes.f.ReadAt(out[i][:], idx*tlog.HashSize); err != nil {
				return nil, fmt.Errorf("trail: read stored hash %d: %w", idx, err)
			}
		}
		return out, nil
	})
}
