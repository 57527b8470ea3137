package delegation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ciampdp/pdp/pdp/internal/jsonl"
)

// FileStore keeps delegations in an append-only JSON-lines file: every
// Create and Update appends one line holding the full record and fsyncs the
// file before it returns. Opening the file replays it (the last line of an
// id wins) into memory, which serves every read. One store at a time may
// use a file: OpenFile takes an exclusive lock on it (an error wrapping
// jsonl.ErrLocked, "in use by another process", otherwise).
//
// A crash can leave the last line torn (written in part, or without its
// newline); OpenFile cuts it off and truncates the file to the last whole
// record (TornBytes says how much), logging the cut (file, offset, bytes)
// as a warning. A torn line was normally never acknowledged; when it was
// (the file was damaged after the fact), the decision trail still holds
// the change and the start-up check of 'pdp serve' names it. A line in the
// middle that cannot be read is an error (ErrCorrupt, with its line
// number). When fsync fails the store refuses every later write (the state
// of the file is unknown; reopen it to recover).
type FileStore struct {
	path string

	mu          sync.RWMutex
	file        *jsonl.File
	recs        map[string]*Delegation
	byPrincipal map[Ref]map[string]struct{}
	byAgent     map[Ref]map[string]struct{}
	byParent    map[string]map[string]struct{}
	closed      bool
}

var _ Store = (*FileStore)(nil)

// FileOptions configure OpenFileWith.
type FileOptions struct {
	// Logger receives the warning of a torn last line cut; default
	// slog.Default().
	Logger *slog.Logger
}

// OpenFile opens (creating it, and its directory, if missing, with mode
// 0600) the store file at path and replays it; a cut is logged to
// slog.Default().
func OpenFile(path string) (*FileStore, error) {
	return OpenFileWith(path, FileOptions{})
}

// OpenFileWith is OpenFile with options.
func OpenFileWith(path string, opts FileOptions) (*FileStore, error) {
	if path == "" {
		return nil, errors.New("delegation: store file: empty path")
	}
	s := &FileStore{
		path:        path,
		recs:        map[string]*Delegation{},
		byPrincipal: map[Ref]map[string]struct{}{},
		byAgent:     map[Ref]map[string]struct{}{},
		byParent:    map[string]map[string]struct{}{},
	}
	// The last record of an id wins: collect, then index.
	recs := map[string]Delegation{}
	f, err := jsonl.Open(path, jsonl.Options{Logger: opts.Logger, Corrupt: ErrCorrupt}, func(body []byte) error {
		var d Delegation
		if err := json.Unmarshal(body, &d); err != nil {
			return err
		}
		if d.ID == "" {
			return errors.New("record without id")
		}
		recs[d.ID] = d
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delegation: %s: %w", path, err)
	}
	s.file = f
	for _, d := range recs {
		s.put(d)
	}
	return s, nil
}

// Path is the file the store keeps.
func (s *FileStore) Path() string { return s.path }

// TornBytes is how many bytes of a torn last line OpenFile cut.
func (s *FileStore) TornBytes() int64 { return s.file.TornBytes() }

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
		return Delegation{}, notFound(id)
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
	if err := s.file.Close(); err != nil {
		return fmt.Errorf("delegation: %w", err)
	}
	return nil
}

func (s *FileStore) writable() error {
	if s.closed {
		return ErrClosed
	}
	if err := s.file.Writable(); err != nil {
		return fmt.Errorf("delegation: %w", err)
	}
	return nil
}

// append writes one line and makes it durable.
func (s *FileStore) append(d *Delegation) error {
	line, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("delegation %s: encode: %w", d.ID, err)
	}
	if err := s.file.Append(line); err != nil {
		return fmt.Errorf("delegation: %w", err)
	}
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

// Lineage implements Store, from memory.
func (s *FileStore) Lineage(ctx context.Context, pairs []Pair) ([]Delegation, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	seen := map[string]bool{}
	var out []Delegation
	for _, p := range pairs {
		for id := range s.byPrincipal[p.Principal] {
			d := s.recs[id]
			if d.Agent != p.Agent {
				continue
			}
			// The record, then its ancestors until one is missing or seen.
			for d != nil && !seen[d.ID] {
				seen[d.ID] = true
				out = append(out, d.Clone())
				if d.Parent == "" {
					break
				}
				d = s.recs[d.Parent]
			}
		}
	}
	return out, nil
}
