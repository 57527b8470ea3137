package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// The witness file (trail.witness_file): a copy of the trail's signed
// checkpoints kept outside the trail, for 'pdp log verify --witness'. The
// store hands each checkpoint its own loop makes (every
// trail.checkpoint_interval while the tree grows, and on a clean stop) to
// the witness writer, which signs none of its own: it checks the
// checkpoint's signature with the trail's verifier key, its origin, and
// that it is of no more records than the trail holds, then appends it if
// it is larger than the one it appended last, as
// 'pdp log checkpoint >> FILE' would. The file is opened for each append
// (O_APPEND, then fsync; the directory fsynced when the file is made), so
// it may be rotated or shipped away between them; a write or fsync that
// fails is cut off again, and before its first append (and after a failed
// one) the writer cuts a torn note of this trail a crash left at the
// file's end (logged at Error); a file that ends in anything else is left
// as it is and not appended to. It holds an advisory lock (flock) on the
// file over the check, the cut and the append, and appends nothing while
// another process holds it; after a restart it does not append again the
// checkpoint the file already ends in. A checkpoint
// refused or an append failed is logged at Error and shows in
// pdp_trail_checkpoint_failing until an append succeeds; it never holds up
// a decision. The file's I/O runs in the writer's own goroutine, never
// under a lock /metrics takes; Close waits for the final append at most
// witnessCloseWait.

// witnessCloseWait bounds how long Close waits for the final append.
const witnessCloseWait = 5 * time.Second

// maxTornTail is the most bytes the writer cuts from the end of the file:
// a torn note is shorter (a checkpoint is ~200 bytes); more is not a
// witness file's, and is left for the operator.
const maxTornTail = 4096

// checkpointSource is a trail store that hands each checkpoint it makes
// to a function: *trail.FileLog and *pgtrail.Log.
type checkpointSource interface {
	OnCheckpoint(fn func(signed []byte))
}

// witnessedStore is a TrailStore whose checkpoints are also appended to a
// witness file.
type witnessedStore struct {
	TrailStore
	path, origin, vkey string
	log                *slog.Logger
	closeWait          time.Duration

	wake      chan struct{}      // a checkpoint waits in next
	syncReq   chan chan struct{} // append what waits, then answer
	quit      chan struct{}      // closed by Close: append what waits, then stop
	done      chan struct{}      // closed when the writer has stopped
	closeOnce sync.Once
	closeErr  error

	mu   sync.Mutex // next and err; never held over I/O
	next []byte     // the latest checkpoint not yet appended
	err  error      // the latest refusal or failed append, nil after a success

	// The writer goroutine's own.
	wrote   bool   // a checkpoint was appended
	last    uint64 // the size of the latest appended
	checked bool   // the file's end was checked for a torn note
}

// witnessStore wraps l so that its checkpoints are appended to
// cfg.WitnessFile once they check with vkey; l as it is when no witness
// file is configured.
func witnessStore(l TrailStore, cfg TrailConfig, vkey string, log *slog.Logger) (TrailStore, error) {
	if cfg.WitnessFile == "" {
		return l, nil
	}
	src, ok := l.(checkpointSource)
	if !ok {
		return nil, fmt.Errorf("trail.witness_file: the %T trail does not hand out its checkpoints", l)
	}
	if _, err := trail.Verifiers(vkey); err != nil {
		return nil, fmt.Errorf("trail.witness_file: %w", err)
	}
	s := &witnessedStore{TrailStore: l, path: cfg.WitnessFile, origin: cfg.Origin, vkey: vkey, log: log,
		closeWait: witnessCloseWait, wake: make(chan struct{}, 1), syncReq: make(chan chan struct{}),
		quit: make(chan struct{}), done: make(chan struct{})}
	src.OnCheckpoint(s.offer)
	go s.loop()
	return s, nil
}

// offer hands the writer a checkpoint the store made; it never blocks
// (the latest waiting replaces an earlier one: it covers it).
func (s *witnessedStore) offer(signed []byte) {
	s.mu.Lock()
	s.next = signed
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *witnessedStore) loop() {
	defer close(s.done)
	for {
		select {
		case <-s.wake:
			s.flush()
		case ack := <-s.syncReq:
			s.flush()
			close(ack)
		case <-s.quit:
			s.flush()
			return
		}
	}
}

// sync waits until the writer has handled the checkpoint offered last.
func (s *witnessedStore) sync() {
	ack := make(chan struct{})
	select {
	case s.syncReq <- ack:
		<-ack
	case <-s.done:
	}
}

// Close closes the store (its final checkpoint reaches the writer), then
// waits at most closeWait for the writer to append it.
func (s *witnessedStore) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.TrailStore.Close()
		close(s.quit)
		t := time.NewTimer(s.closeWait)
		defer t.Stop()
		select {
		case <-s.done:
		case <-t.C:
			s.log.Error("decision trail: gave up waiting for the final append to the witness file; it may lack the last checkpoint",
				"witness_file", s.path, "waited", s.closeWait)
		}
	})
	return s.closeErr
}

// LastCheckpointError is the store's, else the writer's latest failure.
func (s *witnessedStore) LastCheckpointError() error {
	if err := s.TrailStore.LastCheckpointError(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// flush appends the checkpoint waiting, if any, once it checks and is
// larger than the one appended last.
func (s *witnessedStore) flush() {
	s.mu.Lock()
	signed := s.next
	s.next = nil
	s.mu.Unlock()
	if signed == nil {
		return
	}
	h, err := trail.OpenCheckpoint(s.vkey, signed)
	switch {
	case err != nil:
		s.fail("refused a checkpoint that does not check with the trail's verifier key", 0, err)
		return
	case h.Origin != s.origin:
		s.fail("refused a checkpoint of another origin", h.Size, fmt.Errorf("witness file: checkpoint of origin %q, the trail's is %q", h.Origin, s.origin))
		return
	case h.Size > s.TrailStore.Size():
		s.fail("refused a checkpoint of more records than the trail holds", h.Size,
			fmt.Errorf("witness file: checkpoint of %d records, the trail holds %d", h.Size, s.TrailStore.Size()))
		return
	case s.wrote && h.Size <= s.last:
		return
	}
	appended, err := s.write(signed, h.Size)
	if err != nil {
		// Whatever the failed attempt left at the file's end is checked
		// (and a torn note of ours cut) before the next append.
		s.checked = false
		if errors.Is(err, errWitnessLocked) {
			s.mu.Lock()
			if s.next == nil { // nothing newer came: take this one again at the next wake
				s.next = signed
			}
			s.mu.Unlock()
		}
		s.fail("cannot append the checkpoint to the witness file; retrying at the next checkpoint", h.Size, err)
		return
	}
	if !appended {
		s.log.Info("decision trail: the witness file already ends in this checkpoint; not appending it again", "witness_file", s.path, "size", h.Size)
	}
	s.wrote, s.last = true, h.Size
	s.mu.Lock()
	was := s.err
	s.err = nil
	s.mu.Unlock()
	if was != nil {
		s.log.Info("decision trail: the witness file takes checkpoints again", "witness_file", s.path, "size", h.Size)
	}
}

// fail records err as the writer's failure, logged at Error unless it is
// the one logged last.
func (s *witnessedStore) fail(msg string, size uint64, err error) {
	s.mu.Lock()
	same := s.err != nil && s.err.Error() == err.Error()
	s.err = err
	s.mu.Unlock()
	if !same {
		s.log.Error("decision trail: "+msg, "witness_file", s.path, "size", size, "error", err)
	}
}

// errWitnessLocked: another process holds the witness file's lock.
var errWitnessLocked = errors.New("witness file: locked by another process (is 'pdp log checkpoint >> FILE' writing to it?); not appending this time")

// write appends signed (of size records) to the witness file, holding an
// advisory lock (flock LOCK_EX) on it over the check of its end and the
// append, so that a cut never removes what another writer that takes
// the lock appended. Before the first append, and after a failed one,
// it checks the file's end (cutTornTail); when the file already ends in
// a checkpoint of this size (a restart with no new records) it appends
// nothing and reports appended false. A file that does not end in a
// line ("\n") is not appended to.
func (s *witnessedStore) write(signed []byte, size uint64) (appended bool, err error) {
	_, statErr := os.Stat(s.path)
	created := errors.Is(statErr, fs.ErrNotExist)
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return false, fmt.Errorf("witness file: %w", err)
	}
	defer func() { err = errors.Join(err, f.Close()) }() // the close drops the lock
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, errWitnessLocked
		}
		return false, fmt.Errorf("witness file: lock: %w", err)
	}
	r, err := os.Open(s.path) // what f writes, read under f's lock
	if err != nil {
		return false, fmt.Errorf("witness file: %w", err)
	}
	defer r.Close()
	if created {
		if err := trail.SyncDir(filepath.Dir(s.path)); err != nil {
			return false, fmt.Errorf("witness file: fsync its directory: %w", err)
		}
	}
	if !s.checked {
		last, err := s.cutTornTail(f, r, len(signed))
		if err != nil {
			return false, err
		}
		s.checked = true
		// The file's last checkpoint is this trail's of the same size: the
		// one appended before a restart. Only an equal size is skipped: a
		// smaller one (a trail restored or failed over to a replica behind
		// the file) is appended, and later ones after it, as before.
		if last == size && size > 0 {
			return false, nil
		}
	}
	if err := appendWitness(f, r, signed); err != nil {
		return false, err
	}
	return true, nil
}

// cutTornTail cuts what follows the last whole checkpoint of the file f,
// read through r (a note of this trail a crash or a full disk left half
// written), logged at Error, so that the next note starts on a line of
// its own. It returns the size of the file's last whole checkpoint when
// that checks with the trail's key and origin (0 when none does). Only a
// tail shorter than maxTornTail and than a whole note (whole bytes, the
// note about to be appended) that begins with (a part of) the trail's
// origin line is cut: anything else is not a torn note of ours (a file
// named by mistake, a whole note made unparsable by what follows it), and
// is left as it is with an error.
func (s *witnessedStore) cutTornTail(f *os.File, r io.Reader, whole int) (last uint64, err error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return 0, fmt.Errorf("witness file: %w", err)
	}
	tail := 0
	if cps, err := trail.ParseWitnessFile(data); err == nil {
		tail = trail.WitnessTail(cps)
		for i := len(cps) - 1; i >= 0; i-- {
			if cps[i].Err != nil {
				continue
			}
			if h, err := trail.OpenCheckpoint(s.vkey, cps[i].Signed); err == nil && h.Origin == s.origin {
				last = h.Size
			}
			break
		}
	}
	rest := data[tail:]
	torn := bytes.TrimLeft(rest, "\n")
	if len(torn) == 0 {
		return last, nil
	}
	originLine := []byte(s.origin + "\n")
	ours := bytes.HasPrefix(torn, originLine) || bytes.HasPrefix(originLine, torn)
	if len(rest) >= maxTornTail || len(torn) >= whole || !ours {
		return 0, fmt.Errorf("witness file: it ends in %d bytes that are not a checkpoint of origin %q (from byte %d); not appending after them: move the file away", len(rest), s.origin, tail)
	}
	err = f.Truncate(int64(tail))
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return 0, fmt.Errorf("witness file: cut a torn note: %w", err)
	}
	s.log.Error("decision trail: cut a torn note off the end of the witness file (an append a crash or a full disk left half written)",
		"witness_file", s.path, "at_byte", tail, "cut", string(rest))
	return last, nil
}

// appendWitness appends signed to f (opened O_APPEND, locked; r reads
// it) and fsyncs it; a write or fsync that fails is cut off again, so that the next
// append starts on a whole note. A file that does not end in "\n" (or is
// empty) is not appended to.
func appendWitness(f *os.File, r io.ReaderAt, signed []byte) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("witness file: %w", err)
	}
	size := fi.Size()
	if size > 0 {
		b := make([]byte, 1)
		if _, err := r.ReadAt(b, size-1); err != nil {
			return fmt.Errorf("witness file: %w", err)
		}
		if b[0] != '\n' {
			return fmt.Errorf("witness file: it does not end in a whole line (byte %d); not appending after it", size)
		}
	}
	if _, err := f.Write(signed); err != nil {
		return errors.Join(fmt.Errorf("witness file: %w", err), cutBack(f, size))
	}
	if err := f.Sync(); err != nil {
		return errors.Join(fmt.Errorf("witness file: fsync: %w", err), cutBack(f, size))
	}
	return nil
}

// cutBack truncates f to size, after a failed append.
func cutBack(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("witness file: cut the failed append off: %w", err)
	}
	return nil
}
