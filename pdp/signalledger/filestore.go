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
// before Append returns. The lines of a SET of several events carry its
// event's number and their count (set_event, set_events: a fileLine), so
// that opening the file cuts a SET the file ends in (a crash during its
// write) along with a torn last line: the file holds a SET's events all
// or none. The events stay in memory. One store at a time may use a file.
type FileStore struct {
	mu     sync.Mutex
	file   *jsonl.File
	events []signals.Event
	seen   map[string]bool
}

var _ Store = (*FileStore)(nil)

// fileLine is a line of the file: an event and, for a SET of several
// events, its number in the SET (from 1) and their count. A line without
// them (a SET of one event, or a file written before they were) is a
// whole SET.
type fileLine struct {
	signals.Event
	Part int `json:"set_event,omitempty"`
	Of   int `json:"set_events,omitempty"`
}

// fileReader decodes the lines of a file in order, holding the events of
// a SET until its last line.
type fileReader struct {
	last  int64           // the position of the last line
	set   []signals.Event // the SET's events read so far
	setOf int             // its count of events
	store func([]signals.Event)
}

// line decodes one line: nil when it ends a SET (its events stored),
// jsonl.ErrContinued when the SET goes on, jsonl.Fatal for a line that no
// torn write explains.
func (r *fileReader) line(body []byte) error {
	var l fileLine
	if err := json.Unmarshal(body, &l); err != nil {
		return err
	}
	e := l.Event
	if e.Position <= r.last {
		return jsonl.Fatal(fmt.Errorf("position %d does not follow %d", e.Position, r.last))
	}
	switch {
	case l.Part == 0 && l.Of == 0:
		if len(r.set) > 0 {
			return jsonl.Fatal(r.cutShort())
		}
		r.last = e.Position
		r.store([]signals.Event{e})
		return nil
	case l.Of < 2 || l.Part < 1 || l.Part > l.Of:
		return jsonl.Fatal(fmt.Errorf("set_event %d of set_events %d", l.Part, l.Of))
	case l.Part == 1:
		if len(r.set) > 0 {
			return jsonl.Fatal(r.cutShort())
		}
		r.setOf = l.Of
	case len(r.set) == 0 || l.Part != len(r.set)+1 || l.Of != r.setOf ||
		e.Transmitter != r.set[0].Transmitter || e.JTI != r.set[0].JTI:
		return jsonl.Fatal(fmt.Errorf("event %d of %d of %s %s does not follow the line before", l.Part, l.Of, e.Transmitter, e.JTI))
	}
	r.last = e.Position
	r.set = append(r.set, e)
	if len(r.set) < r.setOf {
		return jsonl.ErrContinued
	}
	r.store(r.set)
	r.set = nil
	return nil
}

// cutShort is the error of a line after a SET the file holds part of.
func (r *fileReader) cutShort() error {
	return fmt.Errorf("%s %s: %d of its %d events, then another SET", r.set[0].Transmitter, r.set[0].JTI, len(r.set), r.setOf)
}

// OpenFile opens (creating it if missing) the ledger file at path.
func OpenFile(path string, log *slog.Logger) (*FileStore, error) {
	s := &FileStore{seen: map[string]bool{}}
	r := &fileReader{store: func(evs []signals.Event) {
		s.events = append(s.events, evs...)
		for _, e := range evs {
			s.seen[seenKey(e.Transmitter, e.JTI)] = true
		}
	}}
	f, err := jsonl.Open(path, jsonl.Options{Logger: log, Corrupt: ErrCorrupt}, r.line)
	if err != nil {
		return nil, fmt.Errorf("signals: %s: %w", path, err)
	}
	// A SET the file ended in was cut (r.set is forgotten).
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
	return s.write(events)
}

// Complete appends the rest of a SET the file holds the first events of
// (a file written before a SET's lines were numbered, one line per write,
// ended by a crash in the middle of a SET): events are its missing
// events, of one jti, written as one SET is. It fails when the file holds
// no event of their jti (Append it), or holds one of their types of it
// (ErrDuplicate). 'pdp repair' uses it when the decision trail holds the
// whole SET (adminlog).
func (s *FileStore) Complete(_ context.Context, events []signals.Event) ([]signals.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil {
		return nil, ErrClosed
	}
	if len(events) == 0 {
		return nil, nil
	}
	tx, jti := events[0].Transmitter, events[0].JTI
	if !s.seen[seenKey(tx, jti)] {
		return nil, fmt.Errorf("signals: complete %s %s: the file holds no event of it", tx, jti)
	}
	types := map[string]bool{}
	for _, e := range events {
		if e.Transmitter != tx || e.JTI != jti {
			return nil, fmt.Errorf("signals: complete %s %s: an event of %s %s", tx, jti, e.Transmitter, e.JTI)
		}
		types[e.Type] = true
	}
	for _, e := range s.events {
		if e.Transmitter == tx && e.JTI == jti && types[e.Type] {
			return nil, fmt.Errorf("%s %s %s: %w", tx, jti, e.Type, ErrDuplicate)
		}
	}
	return s.write(events)
}

// write appends the events of one SET (or the rest of one) at the next
// positions; the caller holds s.mu.
func (s *FileStore) write(events []signals.Event) ([]signals.Event, error) {
	var last int64
	if n := len(s.events); n > 0 {
		last = s.events[n-1].Position
	}
	// The SET's lines go in one write, cut back whole on failure (of the
	// write or of the fsync) and numbered, so that a reopen after a crash
	// cuts a part of them: the file holds all of its events or none (a
	// SET half stored could be neither completed, its jti being taken,
	// nor named as not applied).
	out := make([]signals.Event, 0, len(events))
	lines := make([][]byte, 0, len(events))
	for i, e := range events {
		last++
		e.Position = last
		l := fileLine{Event: e}
		if len(events) > 1 {
			l.Part, l.Of = i+1, len(events)
		}
		line, err := json.Marshal(l)
		if err != nil {
			return nil, fmt.Errorf("signals: encode event: %w", err)
		}
		lines = append(lines, line)
		out = append(out, e)
	}
	err := s.file.AppendLines(lines...)
	if err != nil && !errors.Is(err, jsonl.ErrKeptInFile) {
		return nil, fmt.Errorf("signals: append: %w", err)
	}
	// Written, or kept in the file although its fsync failed (held in
	// the page cache, read back from the file; it may not survive a
	// crash, and the start-up check catches that): Since holds it, so
	// the ledger's read-back after the failed append finds it rather than
	// call it not applied.
	s.events = append(s.events, out...)
	for _, e := range out {
		s.seen[seenKey(e.Transmitter, e.JTI)] = true
	}
	if err != nil {
		return nil, fmt.Errorf("signals: append: %w", err)
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
