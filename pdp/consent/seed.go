package consent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/ciampdp/pdp/internal/seedtime"
)

// Seed is the form of seed data (consent.seed of the PDP, consents: of a
// policy test suite): events appended when their ids are absent, and the
// last activity of subjects ("user:heidi" → time). Its times (an event's
// at, recorded_at and expires; an activity) are RFC 3339, or relative to
// seed time, the ledger's clock when the item is first imported
// ("seed-67d+1s", package seedtime): an event is imported only while its id
// is absent, a relative activity only while the subject has none, so a
// restart keeps the first run's times.
type Seed struct {
	Events   []SeedEvent  `json:"events"`
	Activity SeedActivity `json:"activity,omitempty"`
}

// SeedEvent is an event of a seed. Its times, when set, stand for the
// Event's At, RecordedAt and Expires (which JSON fills only through them).
type SeedEvent struct {
	Event
	At, RecordedAt, Expires seedtime.Time
}

// SeedActivity is the last activity of subjects ("type:id", or a user's
// id) in a seed.
type SeedActivity map[string]seedtime.Time

// ErrSeedTime is the error of a seed time that is missing or unreadable.
var ErrSeedTime = errors.New("consent seed: bad time")

// UnmarshalJSON reads an event strictly (unknown fields are errors), its
// times by package seedtime; an error names the event and the field.
func (e *SeedEvent) UnmarshalJSON(b []byte) error {
	type plain Event // Event's fields without this method
	var aux struct {
		plain
		At         json.RawMessage `json:"at"`
		RecordedAt json.RawMessage `json:"recorded_at"`
		Expires    json.RawMessage `json:"expires"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&aux); err != nil {
		return err
	}
	out := SeedEvent{Event: Event(aux.plain)}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		to   *seedtime.Time
	}{{"at", aux.At, &out.At}, {"recorded_at", aux.RecordedAt, &out.RecordedAt}, {"expires", aux.Expires, &out.Expires}} {
		if f.raw == nil {
			continue
		}
		if err := f.to.UnmarshalJSON(f.raw); err != nil {
			return fmt.Errorf("%w: event %q: %s: %w", ErrSeedTime, out.ID, f.name, err)
		}
	}
	*e = out
	return nil
}

// UnmarshalJSON reads subject → time; an error names the subject.
func (a *SeedActivity) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(SeedActivity, len(raw))
	for k, v := range raw {
		var t seedtime.Time
		if err := t.UnmarshalJSON(v); err != nil {
			return fmt.Errorf("%w: activity %q: %w", ErrSeedTime, k, err)
		}
		if t.IsZero() {
			return fmt.Errorf("%w: activity %q: null: want %s", ErrSeedTime, k, seedtime.Syntax)
		}
		out[k] = t
	}
	*a = out
	return nil
}

// Resolve is the event with its times resolved against seed time.
func (e SeedEvent) Resolve(seed time.Time) Event {
	ev := e.Event
	if !e.At.IsZero() {
		ev.At = e.At.Resolve(seed)
	}
	if !e.RecordedAt.IsZero() {
		ev.RecordedAt = e.RecordedAt.Resolve(seed)
	}
	if !e.Expires.IsZero() {
		x := e.Expires.Resolve(seed)
		ev.Expires = &x
	}
	return ev
}

// DecodeSeed reads a seed strictly (unknown fields are errors).
func DecodeSeed(r io.Reader) (Seed, error) {
	var s Seed
	raw, err := io.ReadAll(r)
	if err != nil {
		return s, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, ErrSeedTime) {
			return s, err
		}
		return s, fmt.Errorf("consent seed: %w", err)
	}
	return s, nil
}

// ImportSeed imports a seed's events, then its activity, with the times
// relative to seed time resolved against the ledger's clock now.
func (l *Ledger) ImportSeed(ctx context.Context, s Seed) error {
	seed := l.clock()
	events := make([]Event, len(s.Events))
	for i, e := range s.Events {
		events[i] = e.Resolve(seed)
	}
	if err := l.Import(ctx, events); err != nil {
		return err
	}
	if len(s.Activity) > 0 {
		return l.importSeedActivity(ctx, s.Activity, seed)
	}
	return nil
}

// importSeedActivity imports a seed's activity: an absolute time as
// ImportActivity does (it never moves activity back); a relative one only
// when the subject has no activity yet, here or in the store — a restart
// is not a use, so it must not refresh the first run's time.
func (l *Ledger) importSeedActivity(ctx context.Context, act SeedActivity, seed time.Time) error {
	out := make(map[string]time.Time, len(act))
	rel := map[Ref]time.Time{}
	for k, v := range act {
		if !v.IsRelative() {
			out[k] = v.Resolve(seed)
			continue
		}
		ref, err := ParseRef(k)
		if err != nil {
			return fmt.Errorf("consent seed: activity %q: %w", k, err)
		}
		rel[ref] = v.Resolve(seed)
	}
	if len(rel) > 0 {
		have, err := l.store.Activities(ctx, slices.Collect(maps.Keys(rel)))
		if err != nil {
			return fmt.Errorf("consent seed: read activity: %w", err)
		}
		l.amu.RLock()
		for r, at := range rel {
			if _, ok := have[r]; ok {
				continue
			}
			if _, ok := l.active[r]; ok {
				continue
			}
			out[r.String()] = at
		}
		l.amu.RUnlock()
	}
	return l.ImportActivity(ctx, out)
}
