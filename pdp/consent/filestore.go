package consent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/ciampdp/pdp/pdp/internal/jsonl"
)

// FileStore keeps the ledger in an append-only JSON-lines file, one event a
// line, and fsyncs the file before Append returns: an Append that returned
// survives a SIGKILL or a power cut. Every Append pays one fsync, and
// appends are serialised, so the fsync latency bounds the write rate
// (BenchmarkGive/file measures it: 750 to 3 000 durable gives a second on
// the ext4 virtual disk of the development VM, shared and noisy). Group commit (one fsync for
// the appends that queue behind the one in flight) is future work. Opening the file replays it into memory,
// which serves every read. One store at a time may use a file: OpenFile
// takes an exclusive lock on it (an error saying it is in use by another
// process otherwise).
//
// A crash can leave the last line torn (written in part, or without its
// newline); OpenFile cuts it off and truncates the file to the last whole
// event (TornBytes says how much), logging the cut (file, offset, bytes)
// as a warning. A torn line was normally never acknowledged; when it was
// (the file was damaged after the fact), the decision trail still holds
// the event and the start-up check of 'pdp serve' names it. A line in the
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
	file      *jsonl.File
	events    []Event // position order
	byID      map[string]int
	bySubject map[Ref][]int
	closed    bool

	amu      sync.Mutex
	activity map[Ref]time.Time
	adirty   bool
	flushMu  sync.Mutex // one FlushActivity at a time
}

var _ Store = (*FileStore)(nil)

// FileOptions configure OpenFileWith.
type FileOptions struct {
	// Logger receives the warning of a torn last line cut; default
	// slog.Default().
	Logger *slog.Logger
}

// OpenFile opens (creating it, and its directory, if missing, with mode
// 0600) the ledger file at path, replays it and reads <path>.activity; a
// cut is logged to slog.Default().
func OpenFile(path string) (*FileStore, error) {
	return OpenFileWith(path, FileOptions{})
}

// OpenFileWith is OpenFile with options.
func OpenFileWith(path string, opts FileOptions) (*FileStore, error) {
	if path == "" {
		return nil, errors.New("consent: ledger file: empty path")
	}
	s := &FileStore{
		path: path,
		byID: map[string]int{}, bySubject: map[Ref][]int{}, activity: map[Ref]time.Time{},
	}
	var last int64
	f, err := jsonl.Open(path, jsonl.Options{Logger: opts.Logger, Corrupt: ErrCorrupt}, func(body []byte) error {
		var e Event
		if err := json.Unmarshal(body, &e); err != nil {
			return err
		}
		if err := checkStorable(e); err != nil {
			return err
		}
		if e.Position <= last {
			// Not a torn write: a whole line out of order.
			return jsonl.Fatal(fmt.Errorf("position %d does not follow %d", e.Position, last))
		}
		if _, dup := s.byID[e.ID]; dup {
			return jsonl.Fatal(fmt.Errorf("event id %s appears twice", e.ID))
		}
		last = e.Position
		s.put(e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("consent: %s: %w", path, err)
	}
	s.file = f
	if err := s.readActivity(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("consent: %s: %w", path, err)
	}
	return s, nil
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

func (*FileStore) exclusive() {}

// Path is the ledger file.
func (s *FileStore) Path() string { return s.path }

// TornBytes is how many bytes of a torn last line OpenFile cut.
func (s *FileStore) TornBytes() int64 { return s.file.TornBytes() }

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
	if err := s.file.Append(line); err != nil {
		return Event{}, fmt.Errorf("consent: %w", err)
	}
	s.put(e)
	return cloneEvent(e), nil
}

func (s *FileStore) writable() error {
	if s.closed {
		return ErrClosed
	}
	if err := s.file.Writable(); err != nil {
		return fmt.Errorf("consent: %w", err)
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

// Activities implements Store.
func (s *FileStore) Activities(ctx context.Context, subjects []Ref) (map[Ref]time.Time, error) {
	s.amu.Lock()
	defer s.amu.Unlock()
	out := make(map[Ref]time.Time, len(subjects))
	for _, r := range subjects {
		if at, ok := s.activity[r]; ok {
			out[r] = at
		}
	}
	return out, nil
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
	return jsonl.SyncDir(filepath.Dir(s.path))
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
	if err := s.file.Close(); err != nil {
		return errors.Join(ferr, fmt.Errorf("consent: %w", err))
	}
	return ferr
}
