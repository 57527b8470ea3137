package delegation

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
	"sync"
)

// FileStore keeps delegations in an append-only JSON-lines file: every
// Create and Update appends one line holding the full record and fsyncs the
// file before it returns. Opening the file replays it (the last line of an
// id wins) into memory, which serves every read. One process at a time may
// use a file.
//
// A crash can leave the last line torn (written in part, or without its
// newline); such a line was never acknowledged, so OpenFile drops it and
// truncates the file to the last whole record (TornBytes says how much).
// A line in the middle that cannot be read is an error (ErrCorrupt, with its
// line number). When fsync fails the store refuses every later write (the
// state of the file is unknown; reopen it to recover).
type FileStore struct {
	path string

	mu          sync.RWMutex
	f           *os.File
	size        int64 // bytes of whole records in the file
	torn        int64
	recs        map[string]*Delegation
	byPrincipal map[Ref]map[string]struct{}
	byAgent     map[Ref]map[string]struct{}
	byParent    map[string]map[string]struct{}
	broken      error
	closed      bool

	// sync makes a write durable; tests replace it.
	sync func(*os.File) error
}

var _ Store = (*FileStore)(nil)

// OpenFile opens (creating it, and its directory, if missing, with mode
// 0600) the store file at path and replays it.
func OpenFile(path string) (*FileStore, error) {
	if path == "" {
		return nil, errors.New("delegation: store file: empty path")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("delegation: store file: %w", err)
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("delegation: store file: %w", err)
	}
	s := &FileStore{
		path: path, f: f, sync: (*os.File).Sync,
		recs:        map[string]*Delegation{},
		byPrincipal: map[Ref]map[string]struct{}{},
		byAgent:     map[Ref]map[string]struct{}{},
		byParent:    map[string]map[string]struct{}{},
	}
	if created {
		if err := syncDir(dir); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("delegation: store file: %w", err)
		}
	}
	recs, good, total, err := replay(f)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("delegation: %s: %w", path, err)
	}
	if good < total {
		if err := f.Truncate(good); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("delegation: %s: drop torn last line: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("delegation: %s: drop torn last line: %w", path, err)
		}
		s.torn = total - good
	}
	s.size = good
	for _, d := range recs {
		s.put(d)
	}
	return s, nil
}

// replay reads a store file: the last record of each id, the length of the
// whole records read, and the total length. A last line that is torn is
// left out of good; a bad line before it is ErrCorrupt.
func replay(r io.Reader) (recs map[string]Delegation, good, total int64, err error) {
	recs = map[string]Delegation{}
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		lineNo  int
		pending error // a bad line, fatal if another line follows
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
				return nil, 0, 0, pending
			}
			switch {
			case len(body) == 0 && whole:
				good = total
			case !whole:
				// Written without its newline: never acknowledged.
				pending = fmt.Errorf("%w: line %d: no newline", ErrCorrupt, lineNo)
			default:
				var d Delegation
				if err := json.Unmarshal(body, &d); err != nil {
					pending = fmt.Errorf("%w: line %d: %w", ErrCorrupt, lineNo, err)
				} else if d.ID == "" {
					pending = fmt.Errorf("%w: line %d: record without id", ErrCorrupt, lineNo)
				} else {
					recs[d.ID] = d
					good = total
				}
			}
			if pending != nil {
				good = start
			}
		}
		if errors.Is(rerr, io.EOF) {
			return recs, good, total, nil
		}
		if rerr != nil {
			return nil, 0, 0, fmt.Errorf("read: %w", rerr)
		}
	}
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

// Path is the file the store keeps.
func (s *FileStore) Path() string { return s.path }

// TornBytes is how many bytes of a torn last line OpenFile dropped.
func (s *FileStore) TornBytes() int64 { return s.torn }

// Create implements Store.
func (s *FileStore) Create(ctx context.Context, d Delegation) error {
	if d.ID == "" {
		return errors.New("delegation: create: record without id")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if _, ok := s.recs[d.ID]; ok {
		return fmt.Errorf("delegation %s: %w", d.ID, ErrExists)
	}
	d = d.Clone()
	if err := s.append(&d); err != nil {
		return err
	}
	s.put(d)
	return nil
}

// Update implements Store.
func (s *FileStore) Update(ctx context.Context, d Delegation, prevVersion int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	cur, ok := s.recs[d.ID]
	if !ok {
		return fmt.Errorf("delegation %s: %w", d.ID, ErrNotFound)
	}
	if cur.Version != prevVersion {
		return fmt.Errorf("delegation %s: version %d, expected %d: %w", d.ID, cur.Version, prevVersion, ErrConflict)
	}
	d = d.Clone()
	if err := s.append(&d); err != nil {
		return err
	}
	s.unindex(cur)
	s.put(d)
	return nil
}

// Get implements Store.
func (s *FileStore) Get(ctx context.Context, id string) (Delegation, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Delegation{}, ErrClosed
	}
	d, ok := s.recs[id]
	if !ok {
		return Delegation{}, fmt.Errorf("delegation %s: %w", id, ErrNotFound)
	}
	return d.Clone(), nil
}

// List implements Store. It walks the smallest index the filter allows.
func (s *FileStore) List(ctx context.Context, f Filter) ([]Delegation, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	var ids map[string]struct{}
	all := true
	narrow := func(set map[string]struct{}) {
		if all || len(set) < len(ids) {
			ids, all = set, false
		}
	}
	if f.Principal != nil {
		narrow(s.byPrincipal[*f.Principal])
	}
	if f.Agent != nil {
		narrow(s.byAgent[*f.Agent])
	}
	if f.Parent != "" {
		narrow(s.byParent[f.Parent])
	}
	var out []Delegation
	if all {
		out = make([]Delegation, 0, len(s.recs))
		for _, d := range s.recs {
			out = append(out, d.Clone())
		}
	} else {
		for id := range ids {
			if d := s.recs[id]; f.matches(d) {
				out = append(out, d.Clone())
			}
		}
	}
	sortDelegations(out)
	return out, nil
}

// Close closes the file. Later calls fail with ErrClosed.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("delegation: close %s: %w", s.path, err)
	}
	return nil
}

func (s *FileStore) writable() error {
	if s.closed {
		return ErrClosed
	}
	if s.broken != nil {
		return fmt.Errorf("delegation: %s refuses writes after an earlier failure (reopen it): %w", s.path, s.broken)
	}
	return nil
}

// append writes one line and makes it durable. A failed write is cut off
// the file again; a failed fsync breaks the store.
func (s *FileStore) append(d *Delegation) error {
	line, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("delegation %s: encode: %w", d.ID, err)
	}
	line = append(line, '\n')
	n, err := s.f.Write(line)
	if err != nil {
		if terr := s.f.Truncate(s.size); terr != nil {
			s.broken = errors.Join(err, terr)
		}
		return fmt.Errorf("delegation: write %s: %w", s.path, err)
	}
	if err := s.sync(s.f); err != nil {
		s.broken = err
		return fmt.Errorf("delegation: fsync %s: %w", s.path, err)
	}
	s.size += int64(n)
	return nil
}

// put stores a record (owned by the store from now on) and indexes it.
func (s *FileStore) put(d Delegation) {
	p := &d
	s.recs[d.ID] = p
	addIndex(s.byPrincipal, d.Principal, d.ID)
	addIndex(s.byAgent, d.Agent, d.ID)
	if d.Parent != "" {
		addIndex(s.byParent, d.Parent, d.ID)
	}
}

func (s *FileStore) unindex(d *Delegation) {
	delIndex(s.byPrincipal, d.Principal, d.ID)
	delIndex(s.byAgent, d.Agent, d.ID)
	if d.Parent != "" {
		delIndex(s.byParent, d.Parent, d.ID)
	}
}

func addIndex[K comparable](idx map[K]map[string]struct{}, k K, id string) {
	set := idx[k]
	if set == nil {
		set = map[string]struct{}{}
		idx[k] = set
	}
	set[id] = struct{}{}
}

func delIndex[K comparable](idx map[K]map[string]struct{}, k K, id string) {
	if set := idx[k]; set != nil {
		delete(set, id)
		if len(set) == 0 {
			delete(idx, k)
		}
	}
}
