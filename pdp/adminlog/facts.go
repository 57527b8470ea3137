package adminlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/signals"
)

// SignalEvents reads the signal ledger in position order:
// *signalledger.Ledger or a signalledger.Store.
type SignalEvents interface {
	Since(ctx context.Context, after int64) ([]signals.Event, error)
}

// SignalStore is what Repair appends received SETs to: a
// signalledger.Store.
type SignalStore interface {
	SignalEvents
	Append(ctx context.Context, events []signals.Event) ([]signals.Event, error)
}

// SignalCompleter is a SignalStore that appends the rest of a SET it
// holds the first events of (*signalledger.FileStore: a file written
// before a SET's lines were numbered may end in the middle of one).
type SignalCompleter interface {
	Complete(ctx context.Context, events []signals.Event) ([]signals.Event, error)
}

// Revalidations reads the revalidations in position order:
// *revalidation.Service or a revalidation.Store.
type Revalidations interface {
	After(ctx context.Context, pos int64) ([]dormancy.Revalidation, error)
}

// RevalidationStore is what Repair appends revalidations to: a
// revalidation.Store.
type RevalidationStore interface {
	Revalidations
	Append(ctx context.Context, r dormancy.Revalidation) (dormancy.Revalidation, error)
}

// SignalSET is a received SET as the trail holds it: its events as they
// were to be stored.
type SignalSET struct {
	Transmitter string
	JTI         string
	Events      []signals.Event
	// Revalidates are the revalidations its events imply, as its record
	// names them.
	Revalidates []dormancy.SignalRevalidation
	// invalid says why the record's events cannot be stored as they are
	// (a field that did not decode, or an event that does not validate):
	// the check names the SET, the repair does not store it.
	invalid error
}

// summary names the SET's event types and entities.
func (s SignalSET) summary() string {
	parts := make([]string, len(s.Events))
	for i, e := range s.Events {
		t := e.Type
		if j := strings.LastIndexAny(t, "/:"); j >= 0 && j < len(t)-1 {
			t = t[j+1:]
		}
		if e.Entity != "" {
			t += " of " + e.Entity
		}
		parts[i] = t
	}
	return strings.Join(parts, ", ")
}

func setKey(transmitter, jti string) string { return transmitter + "\x00" + jti }

func eventKey(e signals.Event) string { return setKey(e.Transmitter, e.JTI) + "\x00" + e.Type }

type signalChange struct {
	seq      uint64
	action   string
	set      SignalSET
	redacted bool
	skip     bool // recorded as not applied
}

type revalidationChange struct {
	seq      uint64
	action   string
	r        dormancy.Revalidation
	redacted bool
	skip     bool
}

// factChanges collects, in trail order, the received SETs and the
// revalidations the trail holds, and those recorded as not applied.
type factChanges struct {
	sigs    []signalChange
	lastSig map[string]int   // SET key → index of its newest record in sigs
	sigsOf  map[string][]int // SET key → indexes of all its records in sigs
	revs    []revalidationChange
	revByID map[string]int
	// held: the SETs of sigs the signal ledger holds or the check
	// demands (their implied revalidations are demanded too).
	held map[int]bool
}

func newFactChanges() *factChanges {
	return &factChanges{lastSig: map[string]int{}, sigsOf: map[string][]int{}, revByID: map[string]int{}, held: map[int]bool{}}
}

// add takes the record if it is a signal's or a revalidation's (true),
// counting it in rep.
func (f *factChanges) add(seq uint64, action string, detail json.RawMessage, rep *Report) bool {
	switch action {
	case ActionSignalReceive:
		set, ok := decodeSignal(detail)
		if !ok {
			rep.Unreadable++
			return true
		}
		rep.Changes++
		k := setKey(set.Transmitter, set.JTI)
		f.lastSig[k] = len(f.sigs)
		f.sigsOf[k] = append(f.sigsOf[k], len(f.sigs))
		f.sigs = append(f.sigs, signalChange{seq: seq, action: action, set: set, redacted: bytes.Contains(detail, redactedMarker)})
	case ActionRevalidate, ActionReconfirm:
		r, ok := decodeRevalidation(detail)
		if !ok {
			rep.Unreadable++
			return true
		}
		rep.Changes++
		f.revByID[r.ID] = len(f.revs)
		f.revs = append(f.revs, revalidationChange{seq: seq, action: action, r: r, redacted: bytes.Contains(detail, redactedMarker)})
	case ActionSignalNotApplied, ActionRevalidationNotApplied:
		var na notAppliedDetail
		if json.Unmarshal(detail, &na) != nil {
			rep.Unreadable++
			return true
		}
		// A not_applied record follows its change: it clears the newest
		// record of that SET (a transmitter may send the jti again) or
		// of that revalidation.
		if action == ActionSignalNotApplied {
			if i, ok := f.lastSig[setKey(na.Transmitter, na.JTI)]; ok {
				f.sigs[i].skip = true
			}
		} else if i, ok := f.revByID[na.ID]; ok {
			f.revs[i].skip = true
		}
	default:
		return false
	}
	return true
}

// compare adds to rep what the signal ledger and the revalidations lack.
func (f *factChanges) compare(ctx context.Context, st Stores, rep *Report) error {
	if st.Signals != nil && len(f.sigs) > 0 {
		have, err := storedEvents(ctx, st.Signals)
		if err != nil {
			return fmt.Errorf("read the signal ledger: %w", err)
		}
		for i, c := range f.sigs {
			if c.skip {
				continue
			}
			has, n := setPresence(have, c.set)
			switch {
			case has == n:
				f.held[i] = true
			case !f.otherCopyStored(have, c.set):
				s := c.set
				rep.Missing = append(rep.Missing, Missing{Seq: c.seq, Action: c.action, Signal: &s, Has: presence(has, n), Redacted: c.redacted})
				f.held[i] = true
			}
		}
	}
	if st.Revalidations != nil && (len(f.revs) > 0 || (st.Signals != nil && f.revalidating())) {
		have, err := storedRevalidations(ctx, st.Revalidations)
		if err != nil {
			return fmt.Errorf("read the revalidations: %w", err)
		}
		for _, c := range f.revs {
			// A signal's revalidation is stored when one of its key and
			// source is (made once per SET event: 'pdp repair' may have
			// made it under another id).
			if c.skip || have.ids[c.r.ID] || (strings.HasPrefix(c.r.Source, "signal:") && have.sources[c.r.Key()+"\x00"+c.r.Source]) {
				continue
			}
			r := c.r
			rep.Missing = append(rep.Missing, Missing{Seq: c.seq, Action: c.action, Revalidation: &r, Has: "no such revalidation", Redacted: c.redacted})
		}
		if st.Signals != nil {
			f.compareImplied(have, rep)
		}
	}
	return nil
}

// revalidating reports that a SET record names revalidations it implies.
func (f *factChanges) revalidating() bool {
	for _, c := range f.sigs {
		if len(c.set.Revalidates) > 0 {
			return true
		}
	}
	return false
}

// compareImplied adds to rep the revalidations that the SETs the
// signal ledger holds (or is demanded to hold) imply, as their records
// name them, and the store lacks: a crash or a failed write between the
// SET's append and its revalidation lost it, and the transmitter's retry
// is answered "duplicate". A SET recorded as not applied, or refused as
// another replica's copy of its jti, implies nothing here. The
// revalidation is the one the receive would have made: of the subject,
// by application "signals", with the SET event's source, at its receive
// time; its id is derived from the source, so that the check names the
// same one each time and the repair makes it once.
func (f *factChanges) compareImplied(have storedRevs, rep *Report) {
	named := map[string]bool{}
	for _, c := range f.revs {
		// A revalidation the trail holds is demanded as itself.
		if !c.skip {
			named[c.r.Key()+"\x00"+c.r.Source] = true
		}
	}
	for i, c := range f.sigs {
		if !f.held[i] {
			continue
		}
		for _, imp := range c.set.Revalidates {
			j := slices.IndexFunc(c.set.Events, func(e signals.Event) bool { return e.Type == imp.Type })
			if j < 0 || imp.Subject.Type == "" || imp.Subject.ID == "" {
				continue
			}
			r := ImpliedRevalidation(c.set.Events[j], imp.Subject)
			k := r.Key() + "\x00" + r.Source
			if have.sources[k] || have.ids[r.ID] || named[k] {
				continue
			}
			named[k] = true
			rep.Missing = append(rep.Missing, Missing{Seq: c.seq, Action: c.action, Revalidation: &r,
				Has: "no revalidation from this signal", Redacted: c.redacted, Implied: true})
		}
	}
}

// impliedNamespace derives the ids of the revalidations 'pdp repair'
// makes for stored signals.
var impliedNamespace = uuid.MustParse("6f1d3c1e-3a52-4b8e-9a43-7b0c5e2f9d10")

// ImpliedRevalidation is the revalidation a stored signal event e
// implies for subject, as 'pdp repair' makes it (the receive makes the
// same but for its id).
func ImpliedRevalidation(e signals.Event, subject dormancy.Ref) dormancy.Revalidation {
	source := dormancy.SignalSource(e.Transmitter, e.Type, e.JTI)
	return dormancy.Revalidation{
		ID:      "rv-" + uuid.NewSHA1(impliedNamespace, []byte(subject.String()+"\x00"+source)).String(),
		Kind:    dormancy.KindIdentity,
		Subject: subject,
		At:      e.ReceivedAt.UTC(),
		By:      dormancy.Actor{Application: "signals", Subject: subject},
		Source:  source,
	}
}

// otherCopyStored reports that the signal ledger holds another copy of
// set's jti: two replicas received the same jti at once, each recorded
// its copy in the trail, and the shared store took the first one and
// refused the other as a duplicate (normally recorded as not applied,
// cause "duplicate"). The stored events of the jti are another copy when
// one of their types is not in set (set cut short would be a part of
// it), or when they are exactly the events of another record of the jti
// in the trail.
func (f *factChanges) otherCopyStored(have storedSignals, set SignalSET) bool {
	k := setKey(set.Transmitter, set.JTI)
	stored := have.types[k]
	if len(stored) == 0 {
		return false
	}
	mine := typesOf(set)
	for t := range stored {
		if !mine[t] {
			return true
		}
	}
	for _, i := range f.sigsOf[k] {
		if other := typesOf(f.sigs[i].set); !maps.Equal(other, mine) && maps.Equal(other, stored) {
			return true
		}
	}
	return false
}

func typesOf(set SignalSET) map[string]bool {
	ts := make(map[string]bool, len(set.Events))
	for _, e := range set.Events {
		ts[e.Type] = true
	}
	return ts
}

// storedSignals are the signal ledger's events by transmitter, jti and
// type (what the PostgreSQL store holds unique), and the types stored of
// each jti.
type storedSignals struct {
	events map[string]bool
	types  map[string]map[string]bool
}

func storedEvents(ctx context.Context, se SignalEvents) (storedSignals, error) {
	evs, err := se.Since(ctx, 0)
	if err != nil {
		return storedSignals{}, err
	}
	have := storedSignals{events: make(map[string]bool, len(evs)), types: map[string]map[string]bool{}}
	for _, e := range evs {
		have.events[eventKey(e)] = true
		k := setKey(e.Transmitter, e.JTI)
		if have.types[k] == nil {
			have.types[k] = map[string]bool{}
		}
		have.types[k][e.Type] = true
	}
	return have, nil
}

// storedRevs are the store's revalidations by id, and by key and source.
type storedRevs struct {
	ids     map[string]bool
	sources map[string]bool
}

func storedRevalidations(ctx context.Context, rs Revalidations) (storedRevs, error) {
	all, err := rs.After(ctx, 0)
	if err != nil {
		return storedRevs{}, err
	}
	have := storedRevs{ids: make(map[string]bool, len(all)), sources: make(map[string]bool, len(all))}
	for _, r := range all {
		have.ids[r.ID] = true
		have.sources[r.Key()+"\x00"+r.Source] = true
	}
	return have, nil
}

// setPresence counts the events of set the ledger holds, of n.
func setPresence(have storedSignals, set SignalSET) (has, n int) {
	for _, e := range set.Events {
		if have.events[eventKey(e)] {
			has++
		}
	}
	return has, len(set.Events)
}

func presence(has, n int) string {
	if has == 0 {
		return "no event of this SET"
	}
	return fmt.Sprintf("%d of its %d events", has, n)
}

// decodeSignal reads a received SET from its record's detail
// ({"transmitter","jti","events"}); every event needs a type, and the
// events are the SET's (its transmitter and jti).
func decodeSignal(raw json.RawMessage) (SignalSET, bool) {
	var d struct {
		Transmitter string                        `json:"transmitter"`
		JTI         string                        `json:"jti"`
		Events      []signals.Event               `json:"events"`
		Revalidates []dormancy.SignalRevalidation `json:"revalidates"`
	}
	err := json.Unmarshal(raw, &d)
	var te *json.UnmarshalTypeError
	if (err != nil && !errors.As(err, &te)) || d.Transmitter == "" || d.JTI == "" {
		return SignalSET{}, false
	}
	set := SignalSET{Transmitter: d.Transmitter, JTI: d.JTI, Events: d.Events, Revalidates: d.Revalidates}
	if err != nil {
		// Read as far as it goes (a redacted value is a type error), so
		// that the check names it; the field is zero, not storable.
		set.invalid = fmt.Errorf("a field does not decode: %w", err)
	}
	for i, e := range d.Events {
		if e.Type == "" {
			return SignalSET{}, false
		}
		e.Transmitter, e.JTI, e.Position = d.Transmitter, d.JTI, 0
		d.Events[i] = e
		if set.invalid == nil {
			if err := e.Validate(); err != nil {
				set.invalid = err
			}
		}
	}
	return set, true
}

// decodeRevalidation reads a revalidation from its record's detail
// ({"revalidation":{…}}), checked as its store checks it.
func decodeRevalidation(raw json.RawMessage) (dormancy.Revalidation, bool) {
	var d struct {
		Revalidation json.RawMessage `json:"revalidation"`
	}
	if json.Unmarshal(raw, &d) != nil || len(d.Revalidation) == 0 {
		return dormancy.Revalidation{}, false
	}
	var r dormancy.Revalidation
	if !loose(d.Revalidation, &r) || r.ID == "" || (r.Kind != dormancy.KindIdentity && r.Kind != dormancy.KindDelegation) {
		return dormancy.Revalidation{}, false
	}
	r.Position = 0
	return r, true
}

// restoreSignal appends the SET's events again (at new positions, with
// their original times) unless the ledger holds them by now, and events
// that do not validate as received ones are not stored. A ledger holding
// part of the SET takes the rest only when it is a SignalCompleter and
// the part is the SET's first events as the trail holds them, received
// at the same instant (that receive, cut by a crash; not another
// replica's or another receive's copy of the jti): else a jti is stored
// once and the SET is refused.
func restoreSignal(ctx context.Context, ss SignalStore, set SignalSET) error {
	if set.invalid != nil {
		return fmt.Errorf("the trail's SET cannot be stored: %w", set.invalid)
	}
	for _, e := range set.Events {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("the trail's SET cannot be stored: %w", err)
		}
	}
	have, err := storedEvents(ctx, ss)
	if err != nil {
		return err
	}
	has, n := setPresence(have, set)
	switch {
	case has == n:
		return nil
	case has > 0:
		c, ok := ss.(SignalCompleter)
		if !ok {
			return fmt.Errorf("the signal ledger holds %d of the SET's %d events and takes a jti once: restore it from a backup", has, n)
		}
		part, err := storedOf(ctx, ss, set)
		if err != nil {
			return err
		}
		if !firstEventsOf(part, set) {
			return fmt.Errorf("the signal ledger holds %d of the SET's %d events, not the first ones of this receive, and takes a jti once: restore it from a backup", has, n)
		}
		rest := make([]signals.Event, 0, n-has)
		for _, e := range set.Events[has:] {
			e.Position = 0
			rest = append(rest, e)
		}
		_, err = c.Complete(ctx, rest)
		return err
	case len(have.types[setKey(set.Transmitter, set.JTI)]) > 0:
		return errors.New("the signal ledger holds another copy of this jti (another replica stored it first) and takes a jti once: nothing to apply")
	}
	evs := make([]signals.Event, len(set.Events))
	for i, e := range set.Events {
		e.Position = 0 // the store assigns the next one
		evs[i] = e
	}
	_, err = ss.Append(ctx, evs)
	return err
}

// storedOf is the ledger's events of set's jti, in position order.
func storedOf(ctx context.Context, se SignalEvents, set SignalSET) ([]signals.Event, error) {
	evs, err := se.Since(ctx, 0)
	if err != nil {
		return nil, err
	}
	var part []signals.Event
	for _, e := range evs {
		if e.Transmitter == set.Transmitter && e.JTI == set.JTI {
			part = append(part, e)
		}
	}
	return part, nil
}

// firstEventsOf reports that part is set's first events (fewer than all),
// by type and in order, received when set was (one receive stamps its
// events with one instant).
func firstEventsOf(part []signals.Event, set SignalSET) bool {
	if len(part) == 0 || len(part) >= len(set.Events) {
		return false
	}
	for i, e := range part {
		want := set.Events[i]
		if e.Type != want.Type || !e.ReceivedAt.Equal(want.ReceivedAt) || !e.Time.Equal(want.Time) {
			return false
		}
	}
	return true
}

// restoreRevalidation appends the revalidation again (at a new position,
// with its id and time) unless the store holds it by now.
func restoreRevalidation(ctx context.Context, rs RevalidationStore, r dormancy.Revalidation) error {
	have, err := storedRevalidations(ctx, rs)
	if err != nil {
		return err
	}
	if have.ids[r.ID] || (strings.HasPrefix(r.Source, "signal:") && have.sources[r.Key()+"\x00"+r.Source]) {
		return nil
	}
	r.Position = 0
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := dormancy.DecodeRevalidation(b); err != nil {
		return fmt.Errorf("the trail's revalidation cannot be stored: %w", err)
	}
	_, err = rs.Append(ctx, r)
	return err
}
