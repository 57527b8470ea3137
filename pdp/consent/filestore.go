package consent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// FileStore keeps the ledger in an append-only JSON-lines file, one event a
// line, and fsyncs the file before Append returns: an Append that returned
// survives a SIGKILL or a power cut. Every Append pays one fsync, and
// appends are serialised, so the fsync latency bounds the write rate
// (BenchmarkGive/file measures it: 750 to 3 000 durable gives a second on
// the ext4 virtual disk of the development VM, shared and noisy). Group commit (one fsync for
// the appends that queue behind the one in flight) is future work. Opening the file replays it into memory,
// which serves every read. One process at a time may use a file.
//
// A crash can leave the last line torn (written in part, or without its
// newline); it was never acknowledged, so OpenFile drops it and truncates
// the file to the last whole event (TornBytes says how much). A line in the
// middle that cannot be read, or whose position does not follow the one
// before, is an error (ErrCorrupt, with its line number). When fsync fails
// the store refuses every later write (reopen it to recover).
//
// Activity (the last time each subject was active) is kept in memory and
// written to <path>.activity — a JSON object {"type:id": RFC 3339 time},
// written to a temporary file, fsynced and renamed over the old one — by
// FlushActivity, which Close calls and the Ledger calls every few seconds.
// A crash loses the activity of the last seconds: acceptable, because
// activity only feeds the dormancy rule (counted in years).
type FileStore struct {
	path string

	mu        sync.RWMutex
	f         *os.File
	size      int64 // bytes of whole lines in the file
	torn      int64
	events    []Event // position order
	byID      map[string]int
	bySubject map[Ref][]int
	broken    error
	closed    bool

	amu      sync.Mutex
	activity map[Ref]time.Time
	adirty   bool
	flushMu  sync.Mutex // one FlushActivity at a time

	// sync makes a write durable; tests replace it.
	sync func(*os.File) error
}

var _ Store = (*FileStore)(nil)

// OpenFile opens (creating it, and its directory, if missing, with mode
// 0600) the ledger file at path, replays it and reads <path>.activity.
func OpenFile(path string) (*FileStore, error) {
	if path == "" {
		return nil, errors.New("consent: ledger file: empty path")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("consent: ledger file: %w", err)
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("consent: ledger file: %w", err)
	}
	fail := func(format string, args ...any) (*FileStore, error) {
		_ = f.Close()
		return nil, fmt.Errorf("consent: %s: "+format, append([]any{path}, args...)...)
	}
	if created {
		if err := syncDir(dir); err != nil {
			return fail("%w", err)
		}
	}
	s := &FileStore{
		path: path, f: f, sync: (*os.File).Sync,
		byID: map[string]int{}, bySubject: map[Ref][]int{}, activity: map[Ref]time.Time{},
	}
	good, total, err := s.replay(f)
	if err != nil {
		return fail("%w", err)
	}
	if good < total {
		if err := f.Truncate(good); err != nil {
			return fail("drop torn last line: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fail("drop torn last line: %w", err)
		}
		s.torn = total - good
	}
	s.size = good
	if err := s.readActivity(); err != nil {
		return fail("%w", err)
	}
	return s, nil
}

// replay reads the file into s: the length of the whole lines read and the
// total length. A last line that is torn is left out of good; a bad line
// before it is ErrCorrupt.
func (s *FileStore) replay(r io.Reader) (good, total int64, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		lineNo  int
		pending error // a bad line, fatal if another line follows
		last    int64
	)
	for {
		line, rerr := br.ReadBytes('\n')
		if len(line) > 0 {
			lineNo++
			start := total
			total += int64(len(line))
			whole := line[len(line)-1] == '\n'
			body := bytes.TrimSpace(line)
			if pending != nil {
				if len(body) == 0 {
					continue // blank lines after a torn one change nothing
				}
				return 0, 0, pending
			}
			switch {
			case len(body) == 0 && whole:
				good = total
			case !whole:
				// Written without its newline: never acknowledged.
				pending = fmt.Errorf("%w: line %d: no newline", ErrCorrupt, lineNo)
			default:
				var e Event
				if err := json.Unmarshal(body, &e); err != nil {
					pending = fmt.Errorf("%w: line %d: %w", ErrCorrupt, lineNo, err)
				} else if err := checkStorable(e); err != nil {
					pending = fmt.Errorf("%w: line %d: %w", ErrCorrupt, lineNo, err)
				} else if e.Position <= last {
					// Not a torn write: a whole line out of order.
					return 0, 0, fmt.Errorf("%w: line %d: position %d does not follow %d", ErrCorrupt, lineNo, e.Position, last)
				} else if _, dup := s.byID[e.ID]; dup {
					return 0, 0, fmt.Errorf("%w: line %d: event id %s appears twice", ErrCorrupt, lineNo, e.ID)
				} else {
					last = e.Position
					s.put(e)
					good = total
				}
			}
			if pending != nil {
				good = start
			}
		}
		if errors.Is(rerr, io.EOF) {
			return good, total, nil
		}
		if rerr != nil {
			return 0, 0, fmt.Errorf("read: %w", rerr)
		}
	}
}

func (s *FileStore) activityPath() string { return s.path + ".activity" }

func (s *FileStore) readActivity() error {
	b, err := os.ReadFile(s.activityPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var m map[string]time.Time
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, s.activityPath(), err)
	}
	for k, at := range m {
		ref, err := ParseRef(k)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, s.activityPath(), err)
		}
		s.activity[ref] = storedTime(at)
	}
	return nil
}

func syncDir(dir string) error {
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

func (*FileStore) exclusive() {}

// Path is the ledger file.
func (s *FileStore) Path() string { return s.path }

// TornBytes is how many bytes of a torn last line OpenFile dropped.
func (s *FileStore) TornBytes() int64 { return s.torn }

// Append implements Store: one line, fsynced, at position head+1.
func (s *FileStore) Append(ctx context.Context, e Event) (Event, error) {
	if err := checkStorable(e); err != nil {
		return Event{}, err
	}
	e = cloneEvent(e)
	if e.RecordedAt.IsZero() {
		e.RecordedAt = time.Now()
	}
	e.RecordedAt = storedTime(e.RecordedAt)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return Event{}, err
	}
	if _, ok := s.byID[e.ID]; ok {
		return Event{}, fmt.Errorf("consent event %s: %w", e.ID, ErrExists)
	}
	e.Position = s.head() + 1
	line, err := json.Marshal(e)
	if err != nil {
		return Event{}, fmt.Errorf("consent event %s: encode: %w", e.ID, err)
	}
	line = append(line, '\n')
	n, err := s.f.Write(line)
	if err != nil {
		if terr := s.f.Truncate(s.size); terr != nil {
			s.broken = errors.Join(err, terr)
		}
		return Event{}, fmt.Errorf("consent: write %s: %w", s.path, err)
	}
	if err := s.sync(s.f); err != nil {
		s.broken = err
		return Event{}, fmt.Errorf("consent: fsync %s: %w", s.path, err)
	}
	s.size += int64(n)
	s.put(e)
	return cloneEvent(e), nil
}

func (s *FileStore) writable() error {
	if s.closed {
		return ErrClosed
	}
	if s.broken != nil {
		return fmt.Errorf("consent: %s refuses writes after an earlier failure (reopen it): %w", s.path, s.broken)
	}
	return nil
}

// put indexes an event the store owns from now on.
func (s *FileStore) put(e Event) {
	s.events = append(s.events, e)
	i := len(s.events) - 1
	s.byID[e.ID] = i
	s.bySubject[e.Subject] = append(s.bySubject[e.Subject], i)
}

func (s *FileStore) head() int64 {
	if len(s.events) == 0 {
		return 0
	}
	return s.events[len(s.events)-1].Position
}

// Events implements Store.
func (s *FileStore) Events(ctx context.Context, subject Ref) ([]Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	idx := s.bySubject[subject]
	out := make([]Event, len(idx))
	for i, j := range idx {
		out[i] = cloneEvent(s.events[j])
	}
	return out, nil
}

// Event implements Store.
func (s *FileStore) Event(ctx context.Context, id string) (Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Event{}, ErrClosed
	}
	i, ok := s.byID[id]
	if !ok {
		return Event{}, fmt.Errorf("consent event %s: %w", id, ErrNotFound)
	}
	return cloneEvent(s.events[i]), nil
}

// Head implements Store.
func (s *FileStore) Head(ctx context.Context) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return s.head(), nil
}

// EventsAfter implements Scanner.
func (s *FileStore) EventsAfter(ctx context.Context, after int64, limit int) ([]Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	i := sort.Search(len(s.events), func(i int) bool { return s.events[i].Position > after })
	j := min(len(s.events), i+max(limit, 0))
	return cloneEvents(s.events[i:j]), nil
}

// SetActivity implements Store: in memory until FlushActivity.
func (s *FileStore) SetActivity(ctx context.Context, subject Ref, at time.Time) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	at = storedTime(at)
	s.amu.Lock()
	defer s.amu.Unlock()
	if cur, ok := s.activity[subject]; !ok || at.After(cur) {
		s.activity[subject] = at
		s.adirty = true
	}
	return nil
}

// Activity implements Store.
func (s *FileStore) Activity(ctx context.Context, subject Ref) (time.Time, bool, error) {
	s.amu.Lock()
	defer s.amu.Unlock()
	at, ok := s.activity[subject]
	return at, ok, nil
}

// AllActivity implements Scanner.
func (s *FileStore) AllActivity(ctx context.Context) (map[Ref]time.Time, error) {
	s.amu.Lock()
	defer s.amu.Unlock()
	out := make(map[Ref]time.Time, len(s.activity))
	for k, v := range s.activity {
		out[k] = v
	}
	return out, nil
}

// FlushActivity writes the activity to <path>.activity if it changed since
// the last flush: a temporary file, fsynced, renamed over the old one.
func (s *FileStore) FlushActivity() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.amu.Lock()
	if !s.adirty {
		s.amu.Unlock()
		return nil
	}
	m := make(map[string]time.Time, len(s.activity))
	for k, v := range s.activity {
		m[k.String()] = v
	}
	s.adirty = false
	s.amu.Unlock()
	err := s.writeActivity(m)
	if err != nil {
		s.amu.Lock()
		s.adirty = true
		s.amu.Unlock()
	}
	return err
}

func (s *FileStore) writeActivity(m map[string]time.Time) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("consent: encode activity: %w", err)
	}
	tmp := s.activityPath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("consent: write activity: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return fmt.Errorf("consent: write activity: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("consent: fsync activity: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("consent: write activity: %w", err)
	}
	if err := os.Rename(tmp, s.activityPath()); err != nil {
		return fmt.Errorf("consent: write activity: %w", err)
	}
	return syncDir(filepath.Dir(s.path))
}

// Close flushes the activity and closes the file. Later calls fail with
// ErrClosed.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	ferr := s.FlushActivity()
	if err := s.f.Close(); err != nil {
		return errors.Join(ferr, fmt.Errorf("consent: close %s: %w", s.path, err))
	}
	return ferr
}
