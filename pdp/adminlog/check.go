package adminlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// ErrMissing: the trail holds acknowledged changes a store lacks.
var ErrMissing = errors.New("the decision trail holds acknowledged changes that the stores lack")

// Trail is what Check reads of the decision trail: *trail.FileLog or
// *pgtrail.Log.
type Trail interface {
	Size() uint64
	Scan(from, to uint64, fn func(trail.Record) error) error
}

// Delegations reads delegation records: *delegation.Service or a
// delegation.Store.
type Delegations interface {
	Get(ctx context.Context, id string) (delegation.Delegation, error)
}

// Events reads consent events: *consent.Ledger or a consent.Store.
type Events interface {
	Event(ctx context.Context, id string) (consent.Event, error)
}

// delegationLister lists every record in one read (delegation.Service and
// the stores do).
type delegationLister interface {
	List(ctx context.Context, f delegation.Filter) ([]delegation.Delegation, error)
}

// eventScanner reads the ledger in position order (consent.Ledger and the
// stores do).
type eventScanner interface {
	EventsAfter(ctx context.Context, after int64, limit int) ([]consent.Event, error)
}

// scanBatch is how many events one read of the ledger brings.
const scanBatch = 5000

// allEventIDs reads the id of every event of the ledger.
func allEventIDs(ctx context.Context, sc eventScanner) (map[string]bool, error) {
	ids := map[string]bool{}
	var after int64
	for {
		evs, err := sc.EventsAfter(ctx, after, scanBatch)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			ids[e.ID] = true
			after = max(after, e.Position)
		}
		if len(evs) < scanBatch {
			return ids, nil
		}
	}
}

// Missing is one change the trail holds and a store lacks: a delegation
// record (the newest the trail holds of that id), a consent event, a
// received SET or a revalidation.
type Missing struct {
	// Seq is the trail sequence number of the change's record.
	Seq    uint64
	Action string
	// Delegation is the record after the change; nil for the others.
	Delegation *delegation.Delegation
	// Event is the consent event; nil for the others.
	Event *consent.Event
	// Signal is the received SET; nil for the others.
	Signal *SignalSET
	// Revalidation is the revalidation; nil for the others.
	Revalidation *dormancy.Revalidation
	// Has is what the store holds instead ("no such record", or
	// "version 2 (active)").
	Has string
	// Redacted: the trail holds the change with redacted values
	// (trail.redact), so Repair cannot apply it: restore that store from a
	// backup instead.
	Redacted bool
	// Implied: a revalidation a stored SET's trail record implies (not a
	// change recorded on its own). It is fully determined by that record
	// and idempotent, so a start makes it (MakeImplied) rather than
	// refuse; 'pdp repair --check' still names it.
	Implied bool
}

// Kind is "delegation", "consent", "signal" or "revalidation".
func (m Missing) Kind() string {
	switch {
	case m.Delegation != nil:
		return "delegation"
	case m.Signal != nil:
		return "signal"
	case m.Revalidation != nil:
		return "revalidation"
	}
	return "consent"
}

// ID is the delegation id, the consent event id, the SET's jti or the
// revalidation id.
func (m Missing) ID() string {
	switch {
	case m.Delegation != nil:
		return m.Delegation.ID
	case m.Signal != nil:
		return m.Signal.JTI
	case m.Revalidation != nil:
		return m.Revalidation.ID
	}
	return m.Event.ID
}

func (m Missing) String() string {
	note := ""
	if m.Redacted {
		note = " [redacted in the trail: cannot be repaired from it]"
	}
	switch {
	case m.Delegation != nil:
		return fmt.Sprintf("%s of delegation %s (version %d, status %s; the store has %s) at trail seq %d%s",
			m.Action, m.Delegation.ID, m.Delegation.Version, m.Delegation.Status, m.Has, m.Seq, note)
	case m.Signal != nil:
		return fmt.Sprintf("%s: signal %s from %s (%s; the signal ledger has %s) at trail seq %d%s",
			m.Action, m.Signal.JTI, m.Signal.Transmitter, m.Signal.summary(), m.Has, m.Seq, note)
	case m.Revalidation != nil:
		return fmt.Sprintf("%s: revalidation %s (%s, by %s; the store has %s) at trail seq %d%s",
			m.Action, m.Revalidation.ID, m.Revalidation.Key(), m.Revalidation.By.Subject, m.Has, m.Seq, note)
	}
	return fmt.Sprintf("%s: consent event %s (%s %s of %s; the ledger has %s) at trail seq %d%s",
		m.Action, m.Event.ID, m.Event.Type, m.Event.Purpose, m.Event.Subject, m.Has, m.Seq, note)
}

// Report is the outcome of Check.
type Report struct {
	// Changes is how many change records (delegation, consent, signal,
	// revalidation) the trail holds.
	Changes int
	// Missing lists what the stores lack, in trail order.
	Missing []Missing
	// Unreadable counts change records whose detail could not be read
	// (redacted, or of an unknown shape): they are not checked.
	Unreadable int
}

// Implied splits r into the implied revalidations it names (Missing with
// Implied set) and a report of the rest.
func (r Report) Implied() (implied []Missing, rest Report) {
	rest = r
	rest.Missing = nil
	for _, m := range r.Missing {
		if m.Implied {
			implied = append(implied, m)
			continue
		}
		rest.Missing = append(rest.Missing, m)
	}
	return implied, rest
}

// Err is nil when nothing is missing, else an error wrapping ErrMissing
// that names every missing change.
func (r Report) Err() error {
	if len(r.Missing) == 0 {
		return nil
	}
	lines := make([]string, len(r.Missing))
	for i, m := range r.Missing {
		lines[i] = "  " + m.String()
	}
	return fmt.Errorf("%w (%d):\n%s", ErrMissing, len(r.Missing), strings.Join(lines, "\n"))
}

type delegationChange struct {
	seq      uint64
	action   string
	rec      delegation.Delegation
	redacted bool
}

type consentChange struct {
	seq      uint64
	action   string
	ev       consent.Event
	redacted bool
}

// redactedMarker is in every value trail.redact replaced.
var redactedMarker = []byte(`"$redacted"`)

// Stores are what CheckStores compares with the trail; a nil one is off
// (not checked).
type Stores struct {
	Delegations   Delegations
	Events        Events
	Signals       SignalEvents
	Revalidations Revalidations
}

// Check is CheckStores of the delegation records and the consent ledger.
func Check(ctx context.Context, tr Trail, ds Delegations, es Events) (Report, error) {
	return CheckStores(ctx, tr, Stores{Delegations: ds, Events: es})
}

// CheckStores reads every admin record of the trail and compares the
// changes it holds with the stores (a nil store is off, not checked). A
// delegation is missing a change when the store lacks
// the record or holds an older version than the newest the trail holds
// (and that was not recorded as not applied); a consent event is missing
// when the ledger lacks its id; a received SET when the signal ledger
// lacks an event of it (transmitter, jti, type); a revalidation when its
// store lacks its id. Changes recorded as not applied are not demanded. A
// store that cannot be read is an error.
func CheckStores(ctx context.Context, tr Trail, st Stores) (Report, error) {
	ds, es := st.Delegations, st.Events
	facts := newFactChanges()
	var (
		rep      Report
		dels     = map[string]delegationChange{} // id → newest change
		order    []string                        // delegation ids, first seen first
		events   []consentChange
		skipDel  = map[string]bool{} // digests recorded as not applied
		skipCons = map[string]bool{} // event ids recorded as not applied
	)
	err := tr.Scan(0, tr.Size(), func(r trail.Record) error {
		if r.Kind != recorder.KindAdmin || r.Pruned {
			return nil
		}
		var body struct {
			Action string          `json:"action"`
			Detail json.RawMessage `json:"detail"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			return nil // not ours to judge: the trail verifies its own records
		}
		if facts.add(r.Seq, body.Action, body.Detail, &rep) {
			return nil
		}
		switch {
		case body.Action == ActionDelegationNotApplied || body.Action == ActionConsentNotApplied:
			var na notAppliedDetail
			if json.Unmarshal(body.Detail, &na) != nil {
				rep.Unreadable++
				return nil
			}
			if na.Digest != "" {
				skipDel[na.Digest] = true
			}
			for _, id := range na.Events {
				skipCons[id] = true
			}
		case isDelegationChange(body.Action):
			d, ok := decodeDelegation(body.Detail)
			if !ok {
				rep.Unreadable++
				return nil
			}
			rep.Changes++
			c := delegationChange{seq: r.Seq, action: body.Action, rec: d, redacted: bytes.Contains(body.Detail, redactedMarker)}
			prev, seen := dels[d.ID]
			if !seen {
				order = append(order, d.ID)
			}
			if !seen || d.Version >= prev.rec.Version {
				// Kept even when recorded as not applied later: the filter
				// below falls back to the newest one that was applied.
				dels[d.ID] = c
			}
			dels[d.ID+"\x00"+digest(d)] = c
		case isConsentChange(body.Action):
			evs, ok := decodeEvents(body.Detail)
			if !ok {
				rep.Unreadable++
				return nil
			}
			rep.Changes++
			redacted := bytes.Contains(body.Detail, redactedMarker)
			for _, e := range evs {
				events = append(events, consentChange{seq: r.Seq, action: body.Action, ev: e, redacted: redacted})
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("read the decision trail: %w", err)
	}
	if ds != nil {
		get := ds.Get
		if l, ok := ds.(delegationLister); ok && len(order) > 1 {
			// One read of every record rather than one per id.
			all, err := l.List(ctx, delegation.Filter{})
			if err != nil {
				return rep, fmt.Errorf("read the delegation records: %w", err)
			}
			byID := make(map[string]delegation.Delegation, len(all))
			for _, d := range all {
				byID[d.ID] = d
			}
			get = func(_ context.Context, id string) (delegation.Delegation, error) {
				if d, ok := byID[id]; ok {
					return d, nil
				}
				return delegation.Delegation{}, delegation.ErrNotFound
			}
		}
		for _, id := range order {
			c, ok := newestApplied(dels, id, skipDel)
			if !ok {
				continue
			}
			cur, err := get(ctx, id)
			switch {
			case errors.Is(err, delegation.ErrNotFound):
				rep.Missing = append(rep.Missing, missingDelegation(c, "no such record"))
			case err != nil:
				return rep, fmt.Errorf("read delegation %s: %w", id, err)
			case cur.Version < c.rec.Version:
				rep.Missing = append(rep.Missing, missingDelegation(c, fmt.Sprintf("version %d (%s)", cur.Version, cur.Status)))
			}
		}
	}
	if es != nil {
		has := func(id string) (bool, error) {
			_, err := es.Event(ctx, id)
			if errors.Is(err, consent.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		}
		if sc, ok := es.(eventScanner); ok && len(events) > 1 {
			// One pass over the ledger rather than one read per event.
			ids, err := allEventIDs(ctx, sc)
			if err != nil {
				return rep, fmt.Errorf("read the consent ledger: %w", err)
			}
			has = func(id string) (bool, error) { return ids[id], nil }
		}
		for _, c := range events {
			if skipCons[c.ev.ID] {
				continue
			}
			ok, err := has(c.ev.ID)
			switch {
			case err != nil:
				return rep, fmt.Errorf("read consent event %s: %w", c.ev.ID, err)
			case !ok:
				ev := c.ev
				rep.Missing = append(rep.Missing, Missing{Seq: c.seq, Action: c.action, Event: &ev, Has: "no such event", Redacted: c.redacted})
			}
		}
	}
	if err := facts.compare(ctx, st, &rep); err != nil {
		return rep, err
	}
	sortMissing(rep.Missing)
	return rep, nil
}

// newestApplied is the newest change of id not recorded as not applied.
func newestApplied(dels map[string]delegationChange, id string, skip map[string]bool) (delegationChange, bool) {
	c := dels[id]
	if !skip[digest(c.rec)] {
		return c, true
	}
	// Rare: the newest was not applied; look for the newest that was.
	var best delegationChange
	found := false
	prefix := id + "\x00"
	for k, o := range dels {
		if strings.HasPrefix(k, prefix) && !skip[k[len(prefix):]] && (!found || o.rec.Version > best.rec.Version) {
			best, found = o, true
		}
	}
	return best, found
}

func missingDelegation(c delegationChange, has string) Missing {
	d := c.rec
	return Missing{Seq: c.seq, Action: c.action, Delegation: &d, Has: has, Redacted: c.redacted}
}

// sortMissing puts the list in trail order (insertion sort: short lists).
func sortMissing(ms []Missing) {
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && ms[j].Seq < ms[j-1].Seq; j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}

func isDelegationChange(action string) bool {
	switch action {
	case "delegation.offer", "delegation.accept", "delegation.revoke", "delegation.renounce",
		"delegation.suspend", "delegation.resume":
		return true
	}
	return false
}

func isConsentChange(action string) bool {
	switch action {
	case "consent.give", "consent.refuse", "consent.withdraw", "consent.renew":
		return true
	}
	return false
}

// decodeDelegation reads the record after a change from a detail: this
// package's {"by","reason","delegation"}, or the record itself (offers
// recorded before the journal).
func decodeDelegation(raw json.RawMessage) (delegation.Delegation, bool) {
	var wrapped struct {
		Delegation *delegation.Delegation `json:"delegation"`
	}
	if loose(raw, &wrapped) && wrapped.Delegation != nil && wrapped.Delegation.ID != "" {
		return *wrapped.Delegation, true
	}
	var d delegation.Delegation
	if loose(raw, &d) && d.ID != "" && d.Version > 0 {
		return d, true
	}
	return delegation.Delegation{}, false
}

// decodeEvents reads the events of a consent change: this package's
// {"events":[…]}, or an event or a list of events (recorded before the
// journal).
func decodeEvents(raw json.RawMessage) ([]consent.Event, bool) {
	var wrapped struct {
		Events []consent.Event `json:"events"`
	}
	if loose(raw, &wrapped) && len(wrapped.Events) > 0 {
		return wrapped.Events, validEvents(wrapped.Events)
	}
	var list []consent.Event
	if loose(raw, &list) && len(list) > 0 {
		return list, validEvents(list)
	}
	var e consent.Event
	if loose(raw, &e) {
		return []consent.Event{e}, validEvents([]consent.Event{e})
	}
	return nil, false
}

// loose decodes raw into v, tolerating values of the wrong type (a
// redacted string is an object): what can be read is read.
func loose(raw json.RawMessage, v any) bool {
	err := json.Unmarshal(raw, v)
	var te *json.UnmarshalTypeError
	return err == nil || errors.As(err, &te)
}

// validEvents: every event has an id and a type (its subject may be
// redacted).
func validEvents(evs []consent.Event) bool {
	for _, e := range evs {
		if e.ID == "" || e.Type == "" {
			return false
		}
	}
	return true
}
