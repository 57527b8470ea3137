package adminlog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

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
	lastSig map[string]int // SET key → index of its newest record in sigs
	revs    []revalidationChange
	revByID map[string]int
}

func newFactChanges() *factChanges {
	return &factChanges{lastSig: map[string]int{}, revByID: map[string]int{}}
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
		f.lastSig[setKey(set.Transmitter, set.JTI)] = len(f.sigs)
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
		for _, c := range f.sigs {
			if c.skip {
				continue
			}
			if has, n := setPresence(have, c.set); has < n {
				s := c.set
				rep.Missing = append(rep.Missing, Missing{Seq: c.seq, Action: c.action, Signal: &s, Has: presence(has, n), Redacted: c.redacted})
			}
		}
	}
	if st.Revalidations != nil && len(f.revs) > 0 {
		have, err := storedRevalidations(ctx, st.Revalidations)
		if err != nil {
			return fmt.Errorf("read the revalidations: %w", err)
		}
		for _, c := range f.revs {
			if c.skip || have[c.r.ID] {
				continue
			}
			r := c.r
			rep.Missing = append(rep.Missing, Missing{Seq: c.seq, Action: c.action, Revalidation: &r, Has: "no such revalidation", Redacted: c.redacted})
		}
	}
	return nil
}

// storedEvents is the set of the signal ledger's events by transmitter,
// jti and type (what the PostgreSQL store holds unique).
func storedEvents(ctx context.Context, se SignalEvents) (map[string]bool, error) {
	evs, err := se.Since(ctx, 0)
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(evs))
	for _, e := range evs {
		have[eventKey(e)] = true
	}
	return have, nil
}

func storedRevalidations(ctx context.Context, rs Revalidations) (map[string]bool, error) {
	all, err := rs.After(ctx, 0)
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(all))
	for _, r := range all {
		have[r.ID] = true
	}
	return have, nil
}

// setPresence counts the events of set the ledger holds, of n.
func setPresence(have map[string]bool, set SignalSET) (has, n int) {
	for _, e := range set.Events {
		if have[eventKey(e)] {
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
		Transmitter string          `json:"transmitter"`
		JTI         string          `json:"jti"`
		Events      []signals.Event `json:"events"`
	}
	if !loose(raw, &d) || d.Transmitter == "" || d.JTI == "" {
		return SignalSET{}, false
	}
	for i, e := range d.Events {
		if e.Type == "" {
			return SignalSET{}, false
		}
		e.Transmitter, e.JTI, e.Position = d.Transmitter, d.JTI, 0
		d.Events[i] = e
	}
	return SignalSET{Transmitter: d.Transmitter, JTI: d.JTI, Events: d.Events}, true
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
// their original times) unless the ledger holds them by now; a ledger
// holding part of the SET cannot take the rest (a jti is stored once).
func restoreSignal(ctx context.Context, ss SignalStore, set SignalSET) error {
	have, err := storedEvents(ctx, ss)
	if err != nil {
		return err
	}
	has, n := setPresence(have, set)
	switch {
	case has == n:
		return nil
	case has > 0:
		return fmt.Errorf("the signal ledger holds %d of the SET's %d events and takes a jti once: restore it from a backup", has, n)
	}
	evs := make([]signals.Event, len(set.Events))
	for i, e := range set.Events {
		e.Position = 0 // the store assigns the next one
		evs[i] = e
	}
	_, err = ss.Append(ctx, evs)
	return err
}

// restoreRevalidation appends the revalidation again (at a new position,
// with its id and time) unless the store holds it by now.
func restoreRevalidation(ctx context.Context, rs RevalidationStore, r dormancy.Revalidation) error {
	have, err := storedRevalidations(ctx, rs)
	if err != nil {
		return err
	}
	if have[r.ID] {
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
