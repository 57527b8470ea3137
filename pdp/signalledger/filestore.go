package signalledger

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/ciampdp/pdp/pdp/internal/jsonl"
	"github.com/ciampdp/pdp/pdp/signals"
)

// ErrCorrupt: a line in the middle of a signal ledger file cannot be read,
// or its position does not follow the one before.
var ErrCorrupt = errors.New("signal ledger file corrupt")

// FileStore keeps the signal ledger in an append-only JSON-lines file,
// one event a line, the lines of one SET written at once and fsynced
// before Append returns (the JSON-lines kit
// cuts a torn last line at open). The events stay in memory. One store at
// a time may use a file.
type FileStore struct {
	mu     sync.Mutex
	file   *jsonl.File
	events []signals.Event
	seen   map[string]bool
}

var _ Store = (*FileStore)(nil)

// OpenFile opens (creating it if missing) the ledger file at path.
func OpenFile(path string, log *slog.Logger) (*FileStore, error) {
	s := &FileStore{seen: map[string]bool{}}
	var last int64
	f, err := jsonl.Open(path, jsonl.Options{Logger: log, Corrupt: ErrCorrupt}, func(body []byte) error {
		var e signals.Event
		if err := json.Unmarshal(body, &e); err != nil {
			return err
		}
		if e.Position <= last {
			return jsonl.Fatal(fmt.Errorf("position %d does not follow %d", e.Position, last))
		}
		last = e.Position
		s.events = append(s.events, e)
		s.seen[seenKey(e.Transmitter, e.JTI)] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("signals: %s: %w", path, err)
	}
	s.file = f
	return s, nil
}

// Append implements Store.
func (s *FileStore) Append(_ context.Context, events []signals.Event) ([]signals.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil {
		return nil, ErrClosed
	}
	for _, e := range events {
		if s.seen[seenKey(e.Transmitter, e.JTI)] {
			return nil, fmt.Errorf("%s %s: %w", e.Transmitter, e.JTI, ErrDuplicate)
		}
	}
	var last int64
	if n := len(s.events); n > 0 {
		last = s.events[n-1].Position
	}
	// The SET's lines go in one write, cut back whole on failure: the
	// file holds all of its events or none (a SET half stored could be
	// neither completed, its jti being taken, nor named as not applied).
	out := make([]signals.Event, 0, len(events))
	lines := make([][]byte, 0, len(events))
	for _, e := range events {
		last++
		e.Position = last
		line, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("signals: encode event: %w", err)
		}
		lines = append(lines, line)
		out = append(out, e)
	}
	if err := s.file.AppendLines(lines...); err != nil {
		return nil, fmt.Errorf("signals: append: %w", err)
	}
	s.events = append(s.events, out...)
	for _, e := range out {
		s.seen[seenKey(e.Transmitter, e.JTI)] = true
	}
	return out, nil
}

// Since implements Store.
func (s *FileStore) Since(_ context.Context, after int64) ([]signals.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Positions are 1, 2, 3, … in file order.
	i, _ := slices.BinarySearchFunc(s.events, after+1, func(e signals.Event, p int64) int { return cmp.Compare(e.Position, p) })
	return slices.Clone(s.events[i:]), nil
}

// Close implements Store.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file = nil
	return err
}
