package audit

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// Index finds decision records without scanning the trail: where each
// record id is, and which decisions carry each filter value (subject,
// on-behalf-of, resource, action, application, result, reason code). It
// holds no record bodies: a query reads only the records it lists.
//
// It is built from the trail's records in order, and caught up with the
// records appended since, before every lookup (so opening it over an
// existing trail reads that trail once, and each later lookup reads only
// the new records). A record pruned by retention after it was indexed is
// skipped when read, but still counted in QueryResult.Matched.
type Index struct {
	mu   sync.RWMutex
	next uint64            // records [0, next) are indexed
	ids  map[string]uint64 // record id → seq
	seqs []uint64          // seq of the i-th decision record
	secs []int64           // its time, Unix nanoseconds
	post map[postKey][]uint32
	// syncMu serialises catching up (and guards rd); readers keep
	// reading meanwhile.
	syncMu sync.Mutex
	rd     *replayDecoder // replay's decoder: it caches what records repeat
}

// postKey is a filter field and a value of it.
type postKey struct {
	field byte
	value string
}

// Filter fields of postKey.
const (
	fSubject byte = iota
	fOnBehalfOf
	fResource
	fAction
	fApplication
	fResult
	fReason
	fDelegation
	fGrant
)

// NewIndex returns an empty index; Sync (or the first lookup) fills it.
func NewIndex() *Index {
	return &Index{ids: map[string]uint64{}, post: map[postKey][]uint32{}, rd: newReplayDecoder()}
}

// Sync indexes the records appended to src since the last call.
func (x *Index) Sync(ctx context.Context, src Source) error {
	x.syncMu.Lock()
	defer x.syncMu.Unlock()
	x.mu.RLock()
	from := x.next
	x.mu.RUnlock()
	to := src.Size()
	if from >= to {
		return nil
	}
	// Index in batches so that readers are not held for a whole trail.
	const batch = 4096
	for lo := from; lo < to; lo += batch {
		hi := min(lo+batch, to)
		type item struct {
			seq   uint64
			id    string
			entry *Entry
			nanos int64
		}
		items := make([]item, 0, hi-lo)
		err := src.Scan(lo, hi, func(rec trail.Record) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			it := item{seq: rec.Seq, id: rec.ID}
			switch {
			case rec.Pruned:
			case rec.Kind == trail.KindSidecar:
				e, err := sidecarEntry(rec)
				if err != nil {
					return fmt.Errorf("audit: index: %w", err)
				}
				it.entry, it.nanos = &e, rec.Time.UnixNano()
			case rec.Kind == recorder.KindDecision:
				e, err := x.entry(rec)
				if err != nil {
					return fmt.Errorf("audit: index record %d: %w", rec.Seq, err)
				}
				it.entry, it.nanos = &e, rec.Time.UnixNano()
			}
			items = append(items, it)
			return nil
		})
		if err != nil {
			return err
		}
		x.mu.Lock()
		for _, it := range items {
			if it.id != "" {
				x.ids[it.id] = it.seq
			}
			if it.entry != nil {
				x.addLocked(it.seq, it.nanos, it.entry)
			}
		}
		x.next = hi
		x.mu.Unlock()
	}
	return nil
}

// indexRecord is the part of a decision record the index reads: the
// filter fields, nothing of the Cedar input.
type indexRecord struct {
	Decision struct {
		Application string   `json:"application"`
		Allowed     bool     `json:"decision"`
		Reasons     []string `json:"reasons"`
		Delegation  *struct {
			OnBehalfOf pdp.ObjectRef `json:"on_behalf_of"`
			Chain      []string      `json:"chain"`
		} `json:"delegation"`
		Consent *struct {
			GrantID string `json:"grant_id"`
		} `json:"consent"`
	} `json:"decision"`
	Request struct {
		Subject  pdp.ObjectRef `json:"subject"`
		Action   pdp.Action    `json:"action"`
		Resource pdp.ObjectRef `json:"resource"`
		Context  struct {
			OnBehalfOf *pdp.ObjectRef `json:"on_behalf_of"`
		} `json:"context"`
	} `json:"request"`
}

// entry reads the filter fields of a decision record; a record the short
// form does not fit (redacted values, an odd context) is decoded in full,
// as replay decodes it.
func (x *Index) entry(rec trail.Record) (Entry, error) {
	var ir indexRecord
	if err := jsonv2.Unmarshal(rec.Body, &ir); err != nil {
		db, err := x.rd.decode(rec.Body)
		if err != nil {
			return Entry{}, err
		}
		return entryOf(rec.Seq, db), nil
	}
	d, r := ir.Decision, ir.Request
	e := Entry{Seq: rec.Seq, Application: d.Application, Allowed: d.Allowed, Reasons: d.Reasons,
		Subject: r.Subject.String(), Action: r.Action.Name, Resource: r.Resource.String()}
	switch obo := r.Context.OnBehalfOf; {
	case d.Delegation != nil:
		e.OnBehalfOf, e.Delegations = d.Delegation.OnBehalfOf.String(), d.Delegation.Chain
	case obo != nil && obo.Type != "" && obo.ID != "":
		e.OnBehalfOf = obo.String()
	}
	if d.Consent != nil {
		e.ConsentGrant = d.Consent.GrantID
	}
	return e, nil
}

func (x *Index) addLocked(seq uint64, nanos int64, e *Entry) {
	i := uint32(len(x.seqs))
	x.seqs = append(x.seqs, seq)
	x.secs = append(x.secs, nanos)
	add := func(f byte, v string) {
		// A redacted value stands for no value: it matches no filter, as
		// in a scan.
		if v != "" && !strings.Contains(v, redactedPlaceholder) {
			k := postKey{f, v}
			x.post[k] = append(x.post[k], i)
		}
	}
	add(fSubject, e.Subject)
	add(fOnBehalfOf, e.OnBehalfOf)
	add(fResource, e.Resource)
	add(fAction, e.Action)
	add(fApplication, e.Application)
	add(fResult, map[bool]string{true: "allow", false: "deny"}[e.Allowed])
	for _, r := range slices.Compact(slices.Sorted(slices.Values(e.Reasons))) {
		add(fReason, r)
	}
	for _, d := range slices.Compact(slices.Sorted(slices.Values(e.Delegations))) {
		add(fDelegation, d)
	}
	add(fGrant, e.ConsentGrant)
}

// Seq returns the sequence number of record id, after catching up.
func (x *Index) Seq(ctx context.Context, src Source, id string) (uint64, bool, error) {
	if err := x.Sync(ctx, src); err != nil {
		return 0, false, err
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	seq, ok := x.ids[id]
	return seq, ok, nil
}

// candidates returns the decision numbers (ascending) that may match f,
// from the shortest posting list among f's fields, and the other lists
// each must also be in. all: no field is set (every decision).
func (x *Index) candidates(f Filter) (first []uint32, others [][]uint32, all bool) {
	var lists [][]uint32
	for _, kv := range []struct {
		f byte
		v string
	}{{fSubject, f.Subject}, {fOnBehalfOf, f.OnBehalfOf}, {fResource, f.Resource}, {fAction, f.Action},
		{fApplication, f.Application}, {fResult, f.Result}, {fReason, f.Reason},
		{fDelegation, f.Delegation}, {fGrant, f.ConsentGrant}} {
		if kv.v != "" {
			lists = append(lists, x.post[postKey{kv.f, kv.v}])
		}
	}
	if len(lists) == 0 {
		return nil, nil, true
	}
	slices.SortFunc(lists, func(a, b []uint32) int { return len(a) - len(b) })
	return lists[0], lists[1:], false
}

// match walks the matching decisions, newest first when desc, calling fn
// with each one's seq until fn returns false.
func (x *Index) match(f Filter, desc bool, fn func(seq uint64) bool) {
	first, others, all := x.candidates(f)
	n := len(first)
	if all {
		n = len(x.seqs)
	}
	since, until := int64(0), int64(0)
	if !f.Since.IsZero() {
		since = f.Since.UnixNano()
	}
	if !f.Until.IsZero() {
		until = f.Until.UnixNano()
	}
	for k := range n {
		j := k
		if desc {
			j = n - 1 - k
		}
		i := uint32(j)
		if !all {
			i = first[j]
		}
		if since != 0 && x.secs[i] < since || until != 0 && x.secs[i] >= until {
			continue
		}
		ok := true
		for _, l := range others {
			if _, found := slices.BinarySearch(l, i); !found {
				ok = false
				break
			}
		}
		if ok && !fn(x.seqs[i]) {
			return
		}
	}
}

// read decodes the decision record at seq; ok is false for one pruned
// since it was indexed.
func read(src Source, seq uint64) (Entry, bool, error) {
	var (
		e  Entry
		ok bool
	)
	err := src.Scan(seq, seq+1, func(rec trail.Record) error {
		var err error
		e, ok, err = listedEntry(rec)
		return err
	})
	return e, ok, err
}

// Page answers Service.QueryPage from the index.
func (x *Index) Page(ctx context.Context, src Source, f Filter, before uint64, limit int) (QueryResult, error) {
	return x.list(ctx, src, f, before, limit, true)
}

// Query answers Query (oldest first) from the index.
func (x *Index) Query(ctx context.Context, src Source, f Filter, limit int) (QueryResult, error) {
	if limit <= 0 {
		limit = 1000
	}
	return x.list(ctx, src, f, 0, limit, false)
}

func (x *Index) list(ctx context.Context, src Source, f Filter, before uint64, limit int, desc bool) (QueryResult, error) {
	if err := f.Validate(); err != nil {
		return QueryResult{}, err
	}
	if err := x.Sync(ctx, src); err != nil {
		return QueryResult{}, err
	}
	var picked []uint64
	res := QueryResult{Filter: f, Entries: []Entry{}}
	x.mu.RLock()
	res.Scanned = x.next
	x.match(f, desc, func(seq uint64) bool {
		res.Matched++
		if before != 0 && seq >= before {
			return true
		}
		if len(picked) < limit {
			picked = append(picked, seq)
		} else {
			res.Truncated = true
		}
		return true
	})
	x.mu.RUnlock()
	for _, seq := range picked {
		if err := ctx.Err(); err != nil {
			return QueryResult{}, err
		}
		e, ok, err := read(src, seq)
		if err != nil {
			return QueryResult{}, err
		}
		if ok && f.matches(e) {
			res.Entries = append(res.Entries, e)
		}
	}
	return res, nil
}

// PerMinute counts the decisions of each of n minutes from start (by
// record time), after catching up.
func (x *Index) PerMinute(ctx context.Context, src Source, start time.Time, n int) ([]int, error) {
	if err := x.Sync(ctx, src); err != nil {
		return nil, err
	}
	counts := make([]int, n)
	lo := start.UnixNano()
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, t := range x.secs {
		if t >= lo {
			if i := (t - lo) / int64(time.Minute); i < int64(n) {
				counts[i]++
			}
		}
	}
	return counts, nil
}
