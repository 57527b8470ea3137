// Package jsonl owns the append-only JSON-lines files of the record stores
// (delegation records, the consent ledger): one writer at a time (an
// exclusive lock), replaying them with the one rule for a torn last line
// or an incomplete last record of several lines (cut, and every cut
// logged with file, offset and bytes), durable appends (write, then
// fsync; a failed fsync cuts the lines back) and the refusal of every
// write after a failed fsync.
package jsonl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// ErrLocked: another process (or another open store in this one) has the
// file open.
var ErrLocked = errors.New("the store file is in use by another process")

// Options configure Open.
type Options struct {
	// Logger receives the warning of every cut; default slog.Default().
	Logger *slog.Logger
	// Corrupt is the sentinel every error about a line wraps (the store's
	// ErrCorrupt).
	Corrupt error
}

// fatalError marks a line that no torn write explains.
type fatalError struct{ err error }

func (f fatalError) Error() string { return f.err.Error() }
func (f fatalError) Unwrap() error { return f.err }

// ErrContinued is what a decode returns for a line it took that opens or
// continues a record of several lines (the lines of one AppendLines) that
// a later line ends: the file is whole only after the line that ends it
// (decode returns nil for it). An incomplete record at the end of the
// file is cut as a torn last line is; the decode must forget its lines.
var ErrContinued = errors.New("jsonl: the record continues on the next line")

// Fatal marks an error of decode as fatal even on the last line: a whole
// line that is wrong (out of order, duplicated) is not a torn write.
func Fatal(err error) error { return fatalError{err} }

// File is an open store file. It is not safe for concurrent use: the store
// that owns it serialises its calls.
type File struct {
	path    string
	f       *os.File
	size    int64 // bytes of whole lines in the file
	torn    int64
	broken  error
	corrupt error

	// Sync makes a write durable; tests replace it.
	Sync func(*os.File) error
	// Truncate cuts the file; tests replace it.
	Truncate func(f *os.File, size int64) error
}

// ErrKeptInFile: an append whose fsync failed could not be cut off the
// file again, and the file holds its lines whole as read back now (from
// the page cache, not the disk): the owner takes them as written rather
// than report them not written. They may not survive a crash (the
// start-up check then names what the trail holds and the file lost);
// the file refuses later writes until it is reopened.
var ErrKeptInFile = errors.New("jsonl: the lines are in the file although their fsync failed")

// Open opens (creating it, and its directory, with mode 0600/0700, if
// missing) the file at path and replays it, calling decode with the body
// of every line (without blank lines). A line that decode rejects, or one
// without its newline, is torn when it is the last: it is cut off the
// file and the cut is logged as a warning (file, offset, bytes). Anywhere
// else, or when decode marks it Fatal, it is an error wrapping
// opts.Corrupt with its line number. The lines of a record that the file
// ends before the decode's end of it (ErrContinued) are cut with it.
func Open(path string, opts Options, decode func(body []byte) error) (*File, error) {
	if path == "" {
		return nil, errors.New("empty path")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Corrupt == nil {
		opts.Corrupt = errors.New("store file corrupt")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	// One writer: the lock goes with the descriptor (released by Close, or
	// by the kernel when the process dies).
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	jf := &File{path: path, f: f, corrupt: opts.Corrupt, Sync: (*os.File).Sync, Truncate: (*os.File).Truncate}
	fail := func(err error) (*File, error) {
		_ = f.Close()
		return nil, err
	}
	if created {
		if err := SyncDir(dir); err != nil {
			return fail(err)
		}
	}
	good, total, why, err := jf.replay(f, decode)
	if err != nil {
		return fail(err)
	}
	if good < total {
		if err := f.Truncate(good); err != nil {
			return fail(fmt.Errorf("cut torn last record: %w", err))
		}
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("cut torn last record: %w", err))
		}
		jf.torn = total - good
		opts.Logger.Warn("store file: torn last line cut, or an incomplete last record (a write that was interrupted; if it had been acknowledged, the decision trail still holds it and the start-up check names it)",
			"file", path, "offset", good, "bytes", jf.torn, "why", why.Error())
	}
	jf.size = good
	return jf, nil
}

// replay reads the file: the length of the whole records decoded, the
// total length and, when they differ, why the last line or record is
// torn.
func (jf *File) replay(r io.Reader, decode func([]byte) error) (good, total int64, why, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		lineNo  int
		pending error // a bad line, fatal if another line follows
		inRec   bool  // the last line decoded continues on the next one
	)
	for {
		line, rerr := br.ReadBytes('\n')
		if len(line) > 0 {
			lineNo++
			total += int64(len(line))
			whole := line[len(line)-1] == '\n'
			body := bytes.TrimSpace(line)
			if pending != nil {
				if len(body) == 0 {
					continue // blank lines after a torn one change nothing
				}
				return 0, 0, nil, pending
			}
			switch {
			case len(body) == 0 && whole:
				if !inRec {
					good = total
				}
			case !whole:
				// Written without its newline: an interrupted write.
				pending = fmt.Errorf("%w: line %d: no newline", jf.corrupt, lineNo)
			default:
				derr := decode(body)
				var fe fatalError
				switch {
				case errors.As(derr, &fe):
					return 0, 0, nil, fmt.Errorf("%w: line %d: %w", jf.corrupt, lineNo, fe.err)
				case errors.Is(derr, ErrContinued):
					inRec = true
				case derr != nil:
					pending = fmt.Errorf("%w: line %d: %w", jf.corrupt, lineNo, derr)
				default:
					inRec = false
					good = total
				}
			}
			// good stays where the last whole record ends: a torn line
			// is cut with the lines of its record before it.
		}
		if errors.Is(rerr, io.EOF) {
			if pending == nil && inRec {
				pending = fmt.Errorf("%w: line %d: the record continues past the end of the file", jf.corrupt, lineNo)
			}
			return good, total, pending, nil
		}
		if rerr != nil {
			return 0, 0, nil, fmt.Errorf("read: %w", rerr)
		}
	}
}

// SyncDir fsyncs a directory, so that a file created or renamed in it
// survives a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Path is the file.
func (jf *File) Path() string { return jf.path }

// TornBytes is how many bytes of a torn last line Open cut.
func (jf *File) TornBytes() int64 { return jf.torn }

// Writable says why the file refuses writes (nil when it takes them).
func (jf *File) Writable() error {
	if jf.broken != nil {
		return fmt.Errorf("%s refuses writes after an earlier failure (reopen it): %w", jf.path, jf.broken)
	}
	return nil
}

// Append writes one line (a newline is added) and makes it durable. A
// failed write is cut off the file again; a failed fsync cuts it off and
// breaks the file (its state is unknown: every later Append fails until
// it is reopened).
func (jf *File) Append(line []byte) error { return jf.AppendLines(line) }

// AppendLines writes lines (a newline added to each) in one write and
// makes them durable: a failed write is cut off the file again, so the
// file holds all of them or none. A failed fsync cuts them off too (and
// fsyncs the cut), then breaks the file, as for Append. Across a crash
// the file may end inside them: a store that must have them all or none
// marks them as one record (ErrContinued), so that Open cuts the part.
func (jf *File) AppendLines(lines ...[]byte) error {
	if err := jf.Writable(); err != nil {
		return err
	}
	size := 0
	for _, l := range lines {
		size += len(l) + 1
	}
	buf := make([]byte, 0, size)
	for _, l := range lines {
		buf = append(append(buf, l...), '\n')
	}
	n, err := jf.f.Write(buf)
	if err != nil {
		if terr := jf.Truncate(jf.f, jf.size); terr != nil {
			jf.broken = errors.Join(err, terr)
		}
		return fmt.Errorf("write %s: %w", jf.path, err)
	}
	if err := jf.Sync(jf.f); err != nil {
		// The lines may be on the disk or not, in whole or in part: cut
		// them off and make the cut durable, so that what the caller is
		// told (not written) holds after a restart too.
		jf.broken = err
		if cerr := jf.cutBack(); cerr != nil {
			jf.broken = errors.Join(err, cerr)
			if jf.holds(buf) {
				return fmt.Errorf("fsync %s: %w (and the lines could not be cut off again: %w): %w", jf.path, err, cerr, ErrKeptInFile)
			}
			return fmt.Errorf("fsync %s: %w (and the lines could not be cut off again: %w)", jf.path, err, cerr)
		}
		return fmt.Errorf("fsync %s: %w (the lines were cut off again)", jf.path, err)
	}
	jf.size += int64(n)
	return nil
}

// holds reports that the file holds buf, whole, after its whole lines,
// as a read sees it now: the page cache after a failed fsync, which says
// nothing of the disk.
func (jf *File) holds(buf []byte) bool {
	got := make([]byte, len(buf)+1)
	n, err := jf.f.ReadAt(got, jf.size)
	if err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	return n == len(buf) && bytes.Equal(got[:n], buf)
}

// cutBack truncates the file to its whole lines and fsyncs the cut.
func (jf *File) cutBack() error {
	if err := jf.Truncate(jf.f, jf.size); err != nil {
		return fmt.Errorf("truncate to %d bytes: %w", jf.size, err)
	}
	if err := jf.Sync(jf.f); err != nil {
		return fmt.Errorf("fsync the cut: %w", err)
	}
	return nil
}

// Close closes the file.
func (jf *File) Close() error {
	if err := jf.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", jf.path, err)
	}
	return nil
}
