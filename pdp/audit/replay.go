package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// Source is where records come from: the file trail or the PostgreSQL
// trail.
type Source interface {
	Size() uint64
	Scan(from, to uint64, fn func(trail.Record) error) error
}

// Bundles finds the policy version a record names: the archive.
type Bundles interface {
	Get(hash string) (*policy.Bundle, error)
}

// ReplayOptions selects what Replay and WhatIf read and how.
type ReplayOptions struct {
	// From and To bound the records by sequence number, [From, To); To 0
	// means the end of the trail.
	From, To uint64
	// Since and Until bound the decisions by time when set, [Since, Until).
	Since, Until time.Time
	// Reveal opens redacted values an auditor holds the key to; nil is
	// RevealWith(nil): every redacted value stays hidden.
	Reveal Revealer
	// Workers replay in parallel (default: GOMAXPROCS).
	Workers int
	// Progress, when set, is called every ProgressEvery records with the
	// records read so far and the total in range.
	Progress      func(done, total uint64)
	ProgressEvery uint64
	// MaxItems caps the differences (or flips) listed one by one; the
	// counts are always complete. Default 10,000.
	MaxItems int
}

// Summary is a decision's answer, for listing side by side.
type Summary struct {
	Allowed  bool     `json:"decision"`
	Policies []string `json:"policies"`
	Reasons  []string `json:"reasons"`
}

// Item is one replayed record worth listing: a difference, a flip or a
// record that could not be replayed.
type Item struct {
	Seq           uint64    `json:"seq"`
	DecisionID    string    `json:"decision_id"`
	Time          time.Time `json:"time"`
	Application   string    `json:"application,omitempty"`
	Subject       string    `json:"subject"`
	Action        string    `json:"action"`
	Resource      string    `json:"resource"`
	PolicyVersion string    `json:"policy_version"`
	Outcome       string    `json:"outcome"`
	Recorded      Summary   `json:"recorded"`
	Replayed      *Summary  `json:"replayed,omitempty"`
	Differences   []string  `json:"differences,omitempty"`
	Missing       []string  `json:"missing,omitempty"`
}

// ReplayReport is what Replay found.
type ReplayReport struct {
	From, To      uint64            `json:"-"`
	Decisions     uint64            `json:"decisions"`
	Reproduced    uint64            `json:"reproduced"`
	Differs       uint64            `json:"differs"`
	NotReplayable uint64            `json:"not_replayable"`
	OtherRecords  uint64            `json:"other_records"` // admin records, tombstones
	Versions      map[string]uint64 `json:"policy_versions"`
	Items         []Item            `json:"items"`
	Truncated     bool              `json:"items_truncated,omitempty"`
	Elapsed       time.Duration     `json:"elapsed_ns"`
}

// OK reports whether every decision in range was reproduced.
func (r ReplayReport) OK() bool { return r.Differs == 0 && r.NotReplayable == 0 }

// replayed is one worker result.
type replayed struct {
	seq     uint64
	skip    bool
	version string
	item    Item
	out     pdp.Replayed
	err     error
}

// Replay re-evaluates every decision record in range under the policy
// version it names, taken from the archive, and counts how many reproduce.
func Replay(ctx context.Context, src Source, archive Bundles, opts ReplayOptions) (ReplayReport, error) {
	start := time.Now()
	rep := ReplayReport{Versions: map[string]uint64{}, Items: []Item{}}
	pick := func(d pdp.Decision) (*policy.Bundle, error) { return archive.Get(d.PolicyVersion.Hash) }
	err := run(ctx, src, pick, opts, &rep.From, &rep.To, func(r replayed) {
		if r.skip {
			rep.OtherRecords++
			return
		}
		rep.Decisions++
		rep.Versions[r.version]++
		switch r.out.Outcome {
		case pdp.Reproduced:
			rep.Reproduced++
			return
		case pdp.Differs:
			rep.Differs++
		default:
			rep.NotReplayable++
		}
		if len(rep.Items) < maxItems(opts) {
			rep.Items = append(rep.Items, r.item)
		} else {
			rep.Truncated = true
		}
	})
	rep.Elapsed = time.Since(start)
	return rep, err
}

// Group gathers the flips one change of the policies causes for one action.
type Group struct {
	Action string `json:"action"`
	// Policies are the determining policies that changed between the
	// recorded and the proposed answer (those that stopped or started
	// deciding).
	Policies    []string `json:"policies"`
	AllowToDeny uint64   `json:"allow_to_deny"`
	DenyToAllow uint64   `json:"deny_to_allow"`
	Decisions   []string `json:"decision_ids"`
}

// WhatIfReport is what a proposed policy version would have decided
// differently.
type WhatIfReport struct {
	Proposed      policy.Version `json:"proposed"`
	Decisions     uint64         `json:"decisions"`
	Unchanged     uint64         `json:"unchanged"`
	AllowToDeny   uint64         `json:"allow_to_deny"`
	DenyToAllow   uint64         `json:"deny_to_allow"`
	OtherChanges  uint64         `json:"other_changes"` // same decision, other reasons or policies
	NotReplayable uint64         `json:"not_replayable"`
	OtherRecords  uint64         `json:"other_records"`
	Groups        []Group        `json:"groups"`
	Flips         []Item         `json:"flips"`
	Unreplayable  []Item         `json:"not_replayable_items,omitempty"`
	Truncated     bool           `json:"items_truncated,omitempty"`
	Elapsed       time.Duration  `json:"elapsed_ns"`
}

// Flipped is the number of decisions that would change.
func (r WhatIfReport) Flipped() uint64 { return r.AllowToDeny + r.DenyToAllow }

// WhatIf replays every decision record in range under the proposed bundle
// and reports the decisions that would flip, grouped by action and by the
// policies that made the difference.
func WhatIf(ctx context.Context, src Source, proposed *policy.Bundle, opts ReplayOptions) (WhatIfReport, error) {
	start := time.Now()
	rep := WhatIfReport{Proposed: proposed.Version(), Groups: []Group{}, Flips: []Item{}}
	groups := map[string]*Group{}
	pick := func(pdp.Decision) (*policy.Bundle, error) { return proposed, nil }
	var from, to uint64
	err := run(ctx, src, pick, opts, &from, &to, func(r replayed) {
		if r.skip {
			rep.OtherRecords++
			return
		}
		rep.Decisions++
		if r.out.Outcome == pdp.NotReplayable {
			rep.NotReplayable++
			if len(rep.Unreplayable) < maxItems(opts) {
				rep.Unreplayable = append(rep.Unreplayable, r.item)
			}
			return
		}
		was, now := r.item.Recorded.Allowed, r.out.Decision.Allowed
		if was == now {
			if r.out.Outcome == pdp.Reproduced {
				rep.Unchanged++
			} else {
				rep.OtherChanges++
			}
			return
		}
		if was {
			rep.AllowToDeny++
		} else {
			rep.DenyToAllow++
		}
		changed := symmetricDifference(r.item.Recorded.Policies, r.out.Decision.Policies)
		key := r.item.Action + "\x00" + strings.Join(changed, "\x00")
		g := groups[key]
		if g == nil {
			g = &Group{Action: r.item.Action, Policies: changed}
			groups[key] = g
		}
		if was {
			g.AllowToDeny++
		} else {
			g.DenyToAllow++
		}
		g.Decisions = append(g.Decisions, r.item.DecisionID)
		if len(rep.Flips) < maxItems(opts) {
			rep.Flips = append(rep.Flips, r.item)
		} else {
			rep.Truncated = true
		}
	})
	for _, g := range groups {
		rep.Groups = append(rep.Groups, *g)
	}
	slices.SortFunc(rep.Groups, func(a, b Group) int {
		if c := strings.Compare(a.Action, b.Action); c != 0 {
			return c
		}
		return slices.Compare(a.Policies, b.Policies)
	})
	rep.Elapsed = time.Since(start)
	return rep, err
}

func maxItems(o ReplayOptions) int {
	if o.MaxItems > 0 {
		return o.MaxItems
	}
	return 10000
}

func symmetricDifference(a, b []string) []string {
	out := []string{}
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// errStop ends a scan early when the context is done.
var errStop = errors.New("stop")

// run scans records in range, replays decision records on workers under
// the bundle pick chooses, and hands results to collect in trail order.
func run(ctx context.Context, src Source, pick func(pdp.Decision) (*policy.Bundle, error), opts ReplayOptions,
	from, to *uint64, collect func(replayed)) error {
	*from, *to = opts.From, opts.To
	if size := src.Size(); *to == 0 || *to > size {
		*to = size
	}
	if *from > *to {
		return fmt.Errorf("audit: range starts at %d, after its end %d", *from, *to)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	every := opts.ProgressEvery
	if every == 0 {
		every = 10000
	}
	const chunk = 256
	type batch struct {
		recs []trail.Record
		out  []replayed
		done chan struct{}
	}
	work := make(chan *batch, workers*2)
	ordered := make(chan *batch, workers*4)
	rp := pdp.NewReplayer()
	var wg sync.WaitGroup
	for range workers {
		rd := newReplayDecoder()
		wg.Go(func() {
			for b := range work {
				b.out = make([]replayed, len(b.recs))
				for i, rec := range b.recs {
					b.out[i] = replayOne(rp, rd, rec, pick, opts)
				}
				close(b.done)
			}
		})
	}
	var collectErr error
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		var n uint64
		for b := range ordered {
			<-b.done
			for _, r := range b.out {
				if r.err != nil && collectErr == nil {
					collectErr = r.err
				}
				collect(r)
				n++
				if opts.Progress != nil && n%every == 0 {
					opts.Progress(n, *to-*from)
				}
			}
		}
		if opts.Progress != nil {
			opts.Progress(n, *to-*from)
		}
	}()
	cur := &batch{done: make(chan struct{})}
	flush := func() {
		if len(cur.recs) == 0 {
			return
		}
		ordered <- cur
		work <- cur
		cur = &batch{done: make(chan struct{})}
	}
	scanErr := src.Scan(*from, *to, func(rec trail.Record) error {
		if err := ctx.Err(); err != nil {
			return errStop
		}
		if !opts.Since.IsZero() && rec.Time.Before(opts.Since) || !opts.Until.IsZero() && !rec.Time.Before(opts.Until) {
			return nil
		}
		cur.recs = append(cur.recs, rec)
		if len(cur.recs) == chunk {
			flush()
		}
		return nil
	})
	flush()
	close(work)
	close(ordered)
	wg.Wait()
	<-collected
	switch {
	case errors.Is(scanErr, errStop):
		return ctx.Err()
	case scanErr != nil:
		return fmt.Errorf("audit: read the trail: %w", scanErr)
	}
	return collectErr
}

// replayOne decodes and replays one record.
func replayOne(rp *pdp.Replayer, rd *replayDecoder, rec trail.Record, pick func(pdp.Decision) (*policy.Bundle, error), opts ReplayOptions) replayed {
	if rec.Kind != recorder.KindDecision || rec.Pruned {
		return replayed{seq: rec.Seq, skip: true}
	}
	body := []byte(rec.Body)
	var hidden []string
	reveal := opts.Reveal
	if reveal == nil {
		reveal = RevealWith(nil)
	}
	{
		var err error
		if body, hidden, err = reveal(body); err != nil {
			return replayed{seq: rec.Seq, err: fmt.Errorf("audit: record %d: %w", rec.Seq, err)}
		}
	}
	db, err := rd.decode(body)
	if err != nil {
		r := replayed{seq: rec.Seq, item: Item{Seq: rec.Seq, DecisionID: rec.ID, Time: rec.Time, Outcome: pdp.NotReplayable,
			Missing: []string{"the record's body does not decode: " + err.Error()}}}
		r.out.Outcome = pdp.NotReplayable
		return r
	}
	d := db.Decision
	db.Request.Application = d.Application // the request's is never serialised: the caller's identity is the decision's
	item := Item{
		Seq: rec.Seq, DecisionID: d.ID, Time: d.Time, Application: d.Application,
		Subject:       db.Request.Subject.Type + ":" + db.Request.Subject.ID,
		Action:        db.Request.Action.Name,
		Resource:      db.Request.Resource.Type + ":" + db.Request.Resource.ID,
		PolicyVersion: d.PolicyVersion.Hash,
		Recorded:      Summary{Allowed: d.Allowed, Policies: d.Policies, Reasons: d.Reasons},
	}
	r := replayed{seq: rec.Seq, version: d.PolicyVersion.Hash}
	if missing := trail.NotReplayable(hidden); len(missing) > 0 {
		r.out = pdp.Replayed{Outcome: pdp.NotReplayable, Missing: missing}
	} else if b, err := pick(d); err != nil {
		r.out = pdp.Replayed{Outcome: pdp.NotReplayable, Missing: []string{"policy version: " + err.Error()}}
	} else {
		r.out = rp.Replay(b, db.Request, d, pdp.ReplayOptions{RequestRedacted: requestHidden(hidden)})
	}
	item.Outcome, item.Differences, item.Missing = r.out.Outcome, r.out.Differences, r.out.Missing
	if r.out.Outcome != pdp.NotReplayable {
		item.Replayed = &Summary{Allowed: r.out.Decision.Allowed, Policies: r.out.Decision.Policies, Reasons: r.out.Decision.Reasons}
	}
	r.item = item
	return r
}

// DecodeDecision decodes a decision record's body. Numbers in the request
// decode as json.Number, as the AuthZEN decoder gives them to the engine,
// so that a replay converts them exactly as the decision did.
func DecodeDecision(body []byte) (recorder.DecisionBody, error) {
	var raw struct {
		Decision pdp.Decision    `json:"decision"`
		Request  json.RawMessage `json:"request"`
		Instance string          `json:"instance"`
		Build    string          `json:"build"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return recorder.DecisionBody{}, fmt.Errorf("audit: decision record: %w", err)
	}
	db := recorder.DecisionBody{Decision: raw.Decision, Instance: raw.Instance, Build: raw.Build}
	var err error
	if db.Request, err = decodeRequest(raw.Request); err != nil {
		return db, fmt.Errorf("audit: decision record: request: %w", err)
	}
	return db, nil
}
