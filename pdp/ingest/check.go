package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// What a sidecar may put into the trail.
//
// A sidecar record is stored only if it is an answer the sidecar could
// have given honestly:
//
//   - It comes from a sidecar id bound to the calling application: the
//     first application that stores records under an id owns it (rebuilt
//     from the trail at start); another application's key with that id
//     gets 403.
//   - Its body is the sidecar's record of that answer: decision_id is the
//     record's id, time its time, sidecar the PDP-Sidecar-Id of the
//     request, decision is given, source one of cache, degraded and
//     fail_closed (degraded true exactly for degraded).
//   - Its id is fresh: a UUIDv7 whose time is within maxIDSkew of the
//     record's time, and not the id of a decision the PDP answered a
//     sidecar with, nor of a record already stored, nor of any record
//     another one of the same request names.
//   - Its time is not more than maxIngestFuture ahead of the PDP's clock
//     and not more than MaxIngestAge behind it.
//   - A cache hit or degraded answer (source cache or degraded) repeats a
//     central decision (cached_from) of the same application, with the
//     same answer and action, and is not dated before that decision.
//   - An answer that repeats no central decision (source fail_closed:
//     the central PDP could not be asked, no degraded answer applied) is a
//     deny.
//
// Otherwise the whole request is refused with 422 (403 for the sidecar
// id) and nothing of it is stored.
//
// The central decisions are looked up in a bounded index (the decisions
// answered to sidecars since the start, and those of the trail's last
// indexWindow at start, at most maxIndexed); one not there is looked up
// in the trail (one scan for the request's missing ids, one such scan at
// a time). The ids checked for freshness are those the index and that
// scan see: the id of an old central decision not answered to a sidecar is
// only caught when a scan runs.
const (
	// MaxIngestAge bounds how old a sidecar record may be (a spool kept
	// through a long outage ships within it).
	MaxIngestAge = 30 * 24 * time.Hour
	// maxIngestFuture bounds how far ahead of the PDP's clock a record may be.
	maxIngestFuture = time.Minute
	// maxIDSkew bounds the distance between a record's time and the time in
	// its UUIDv7 id.
	maxIDSkew = time.Minute
	// maxIndexed bounds the decision index.
	maxIndexed = 1 << 20
	// indexWindow: the decisions of the trail indexed at start.
	indexWindow = time.Hour
)

var (
	// ErrRefused refuses a record the sidecar could not have made
	// honestly (the API answers 422).
	ErrRefused = errors.New("sidecar record refused")
	// ErrSidecarBound refuses records of a sidecar id that belongs to
	// another application (the API answers 403).
	ErrSidecarBound = errors.New("this sidecar id belongs to another application")
)

// known is what the index knows of a decision id.
type known struct {
	sidecar bool // a sidecar record, not a central decision
	app     string
	at      time.Time
	allowed bool
	action  string // "" when unknown
}

// decisionIndex is a bounded map of decision ids, oldest out first.
type decisionIndex struct {
	mu    sync.Mutex
	m     map[string]known
	order []string // ring of ids in insertion order
	next  int
}

func newDecisionIndex() *decisionIndex {
	return &decisionIndex{m: make(map[string]known)}
}

func (x *decisionIndex) add(id string, k known) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.m[id]; ok {
		return
	}
	if len(x.order) < maxIndexed {
		x.order = append(x.order, id)
	} else {
		delete(x.m, x.order[x.next])
		x.order[x.next] = id
		x.next = (x.next + 1) % maxIndexed
	}
	x.m[id] = k
}

func (x *decisionIndex) get(id string) (known, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	k, ok := x.m[id]
	return k, ok
}

// NoteDecision tells the ingest about a central decision answered to a
// sidecar, which the sidecar may repeat from its cache.
func (in *Ingest) NoteDecision(id, app string, at time.Time, allowed bool, action string) {
	in.index.add(id, known{app: app, at: at, allowed: allowed, action: action})
}

// sidecarRecord is the part of a sidecar's record that is checked.
type sidecarRecord struct {
	DecisionID string    `json:"decision_id"`
	Time       time.Time `json:"time"`
	Sidecar    string    `json:"sidecar"`
	Decision   *bool     `json:"decision"`
	Source     string    `json:"source"`
	CachedFrom string    `json:"cached_from"`
	Degraded   bool      `json:"degraded"`
	Request    struct {
		Action struct {
			Name string `json:"name"`
		} `json:"action"`
	} `json:"request"`
}

// checkBatch applies the rules above to the records to be stored (in
// spool order), before any is.
// offset is the index of recs[0] in the request, for the messages.
func (in *Ingest) checkBatch(ctx context.Context, app, sidecar string, recs []Record, offset int) error {
	if err := in.bind(app, sidecar, false); err != nil {
		return err
	}
	now := time.Now()
	parsed := make([]sidecarRecord, len(recs))
	ids := make(map[string]int, len(recs))
	var missing map[string]bool
	for i, r := range recs {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: records[%d]: %s", ErrRefused, offset+i, fmt.Sprintf(format, args...))
		}
		p := &parsed[i]
		if err := decodeSidecarRecord(r.Body, p); err != nil {
			return bad("body: %v", err)
		}
		switch {
		case p.DecisionID != r.ID:
			return bad("body.decision_id %q is not the record's id %q", p.DecisionID, r.ID)
		case !p.Time.Equal(r.Time):
			return bad("body.time %s is not the record's time %s", p.Time.Format(time.RFC3339Nano), r.Time.Format(time.RFC3339Nano))
		case p.Sidecar != sidecar:
			return bad("body.sidecar %q is not the PDP-Sidecar-Id of the request", p.Sidecar)
		case p.Decision == nil:
			return bad("body.decision is missing")
		case r.Time.After(now.Add(maxIngestFuture)):
			return bad("time %s is ahead of the PDP's clock", r.Time.Format(time.RFC3339Nano))
		case r.Time.Before(now.Add(-MaxIngestAge)):
			return bad("time %s is older than %v", r.Time.Format(time.RFC3339Nano), MaxIngestAge)
		}
		u, err := uuid.Parse(r.ID)
		if err != nil || u.Version() != 7 {
			return bad("id %q is not a UUIDv7", r.ID)
		}
		if sec, nsec := u.Time().UnixTime(); absDuration(time.Unix(sec, nsec).Sub(r.Time)) > maxIDSkew {
			return bad("id %q was not made at the record's time %s", r.ID, r.Time.Format(time.RFC3339Nano))
		}
		if j, dup := ids[r.ID]; dup {
			return bad("id %q is also records[%d]'s", r.ID, offset+j)
		}
		ids[r.ID] = i
		if _, ok := in.index.get(r.ID); ok {
			return bad("id %q is not fresh: it names a decision already in the trail", r.ID)
		}
		switch p.Source {
		case "cache", "degraded":
			if p.Degraded != (p.Source == "degraded") {
				return bad("degraded %v does not fit source %q", p.Degraded, p.Source)
			}
			if p.CachedFrom == "" {
				return bad("an answer from the %s repeats a central decision: cached_from is missing", p.Source)
			}
			if _, ok := in.index.get(p.CachedFrom); !ok {
				if missing == nil {
					missing = make(map[string]bool)
				}
				missing[p.CachedFrom] = true
			}
		case "fail_closed":
			if p.CachedFrom != "" || p.Degraded {
				return bad("a fail-closed answer repeats no decision: cached_from and degraded must be empty")
			}
			if *p.Decision {
				return bad("an answer that repeats no central decision must be a deny")
			}
		default:
			return bad("source %q must be cache, degraded or fail_closed", p.Source)
		}
	}
	found, err := in.lookup(ctx, missing, ids, offset)
	if err != nil {
		return err
	}
	for i, p := range parsed {
		if p.CachedFrom == "" {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: records[%d]: %s", ErrRefused, offset+i, fmt.Sprintf(format, args...))
		}
		k, ok := in.index.get(p.CachedFrom)
		if !ok {
			k, ok = found[p.CachedFrom]
		}
		switch {
		case !ok || k.sidecar:
			return bad("cached_from %q is not a central decision in the trail", p.CachedFrom)
		case k.app != app:
			return bad("cached_from %q is another application's decision", p.CachedFrom)
		case k.allowed != *p.Decision:
			return bad("decision %v is not the answer of %q", *p.Decision, p.CachedFrom)
		case k.action != "" && k.action != p.Request.Action.Name:
			return bad("action %q is not the action of %q", p.Request.Action.Name, p.CachedFrom)
		case recs[i].Time.Before(k.at):
			return bad("time %s is before the decision it repeats (%s)", recs[i].Time.Format(time.RFC3339Nano), k.at.Format(time.RFC3339Nano))
		}
	}
	return nil
}

// lookup reads the trail once for the decisions of want (none: no scan),
// and fails if any id of fresh is found there. One lookup at a time.
func (in *Ingest) lookup(ctx context.Context, want map[string]bool, fresh map[string]int, offset int) (map[string]known, error) {
	if len(want) == 0 || in.scan == nil {
		return nil, nil
	}
	in.scanMu.Lock()
	defer in.scanMu.Unlock()
	found := make(map[string]known, len(want))
	err := in.scan.Scan(0, in.scan.Size(), func(rec trail.Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if i, ok := fresh[rec.ID]; ok {
			return fmt.Errorf("%w: records[%d]: id %q is not fresh: it names a decision already in the trail", ErrRefused, offset+i, rec.ID)
		}
		if !want[rec.ID] {
			return nil
		}
		if k, ok := knownOf(rec); ok {
			found[rec.ID] = k
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: look up decisions in the trail: %v", recorder.ErrRecordFailed, err)
	}
	return found, nil
}

// knownOf reads a trail record into the index's terms.
func knownOf(rec trail.Record) (known, bool) {
	switch rec.Kind {
	case recorder.KindDecision:
		var b struct {
			Decision struct {
				Allowed     bool   `json:"decision"`
				Application string `json:"application"`
			} `json:"decision"`
			Request struct {
				Action struct {
					Name string `json:"name"`
				} `json:"action"`
			} `json:"request"`
		}
		if json.Unmarshal(rec.Body, &b) != nil {
			return known{}, false
		}
		return known{app: b.Decision.Application, at: rec.Time, allowed: b.Decision.Allowed, action: b.Request.Action.Name}, true
	case trail.KindSidecar:
		return known{sidecar: true, at: rec.Time}, true
	}
	return known{}, false
}

// bind checks that sidecar belongs to app, and binds it when store is set
// and it is not bound yet.
func (in *Ingest) bind(app, sidecar string, store bool) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	owner, ok := in.bound[sidecar]
	switch {
	case ok && owner != app:
		return fmt.Errorf("%w: PDP-Sidecar-Id %q", ErrSidecarBound, sidecar)
	case !ok && store:
		in.bound[sidecar] = app
	}
	return nil
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
