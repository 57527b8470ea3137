package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/reason"
	"github.com/ciampdp/pdp/pdp/trail"
)

// ReasonTrailUnavailable is the reason code of a deny given because the
// decision could not be recorded: the trail failed, or (async, when_full
// deny) its buffer was full.
const ReasonTrailUnavailable = reason.TrailUnavailable

// KindDecision is the Record.Kind of a decision record.
const KindDecision = "decision"

// Durability modes and full-buffer behaviours of a Recorder.
const (
	ModeSync  = "sync"  // a decision is answered once its record is durable
	ModeAsync = "async" // records go through a bounded buffer to the log
	FullBlock = "block" // async, buffer full: wait for room
	FullDeny  = "deny"  // async, buffer full: deny with trail_unavailable
)

// DefaultBuffer is the async buffer size when RecorderOptions.Buffer is 0.
const DefaultBuffer = 10000

// DefaultFlushInterval is how long an async batch gathers records when
// RecorderOptions.FlushInterval is 0.
const DefaultFlushInterval = 5 * time.Millisecond

var (
	// ErrBadMode is returned for an unknown mode or full-buffer behaviour.
	ErrBadMode = errors.New("trail: mode must be sync or async, when_full block or deny")
	// ErrNoSearch is returned by the search methods when the wrapped
	// decider cannot search.
	ErrNoSearch = errors.New("trail: the wrapped decider does not answer searches")
	// errBufferFull is why a decision is denied in async mode with when_full deny.
	errBufferFull = errors.New("the decision trail's buffer is full")
)

// Appender is the storage edge of a Recorder: *trail.FileLog or *pgtrail.Log.
type Appender interface {
	Append(ctx context.Context, recs ...trail.Record) ([]uint64, error)
}

var (
	_ pdp.Decider  = (*Recorder)(nil)
	_ pdp.Searcher = (*Recorder)(nil)
	_ Appender     = (*trail.FileLog)(nil)
)

// RecorderOptions configures a Recorder.
type RecorderOptions struct {
	Mode     string // ModeSync (default) or ModeAsync
	Buffer   int    // async: records buffered; default DefaultBuffer
	WhenFull string // async: FullBlock (default) or FullDeny
	MaxBatch int    // async: records per Append; default 1024
	// FlushInterval (async) is how long the writer gathers records after
	// the first one of a batch before it writes them with one fsync,
	// unless MaxBatch is reached first: fewer, larger writes. Default
	// DefaultFlushInterval; negative: write whatever is buffered at once.
	FlushInterval time.Duration
	Instance      string // the PDP instance id written in every record
	Build         string // the PDP build version written in every record
	Logger        *slog.Logger
	// Redactor, when set, redacts every record's body before it is
	// written (personal data as keyed hashes or encrypted to auditors).
	Redactor *trail.Redactor
}

// Validate reports options that cannot be used.
func (o RecorderOptions) Validate() error {
	switch {
	case o.Mode != "" && o.Mode != ModeSync && o.Mode != ModeAsync:
		return fmt.Errorf("%w: mode %q", ErrBadMode, o.Mode)
	case o.WhenFull != "" && o.WhenFull != FullBlock && o.WhenFull != FullDeny:
		return fmt.Errorf("%w: when_full %q", ErrBadMode, o.WhenFull)
	case o.Buffer < 0 || o.MaxBatch < 0:
		return fmt.Errorf("%w: negative buffer or batch", trail.ErrBadOption)
	}
	return nil
}

// RecorderStats counts what a Recorder did since it started.
type RecorderStats struct {
	Written  uint64 // records the log acknowledged as durable
	Blocked  uint64 // async: decisions that waited for room in the buffer
	Denied   uint64 // decisions answered deny trail_unavailable
	Failures uint64 // records the log failed to write
	Buffered int    // async: records waiting in the buffer now
}

// Recorder wraps a decider and writes a decision record for every decision
// it answers, batch items included, into a trail log.
//
// In sync mode a decision is returned only once its record is durable; if
// the log cannot write it, the decision becomes a deny with reason
// trail_unavailable (same id), so no allow is ever answered without its
// record. In async mode records go through a bounded buffer that a single
// goroutine drains into the log in batches; when the buffer is full the
// decision waits (block) or is denied (deny), and it is never dropped. While
// the log fails (from a failed write until a write succeeds again), async
// decisions are denied as well; Ready says so, and tries a write.
//
// When the wrapped decider is a pdp.Reserver (the engine), what each
// decision changes in its velocity and failed step-up counters, and the
// activity it marks, is made once the decision's record is durable (sync)
// or buffered (async), and dropped when the decision becomes a
// trail_unavailable deny.
//
// Search answers are recorded too, one record per search (kind "search")
// holding the request and the entities answered; a search whose record
// cannot be written is not answered (ErrRecordFailed).
type Recorder struct {
	inner pdp.Decider
	// reserver is inner when it keeps back what decisions change in its
	// counters (the engine): they are made once the records are written
	// (sync) or buffered (async), and dropped when not.
	reserver pdp.Reserver
	log      Appender
	opts     RecorderOptions
	logger   *slog.Logger

	// async
	mu      sync.RWMutex // held shared by senders, exclusively by Close
	closed  bool
	buf     chan trail.Record
	drained chan struct{}
	failed  atomic.Pointer[error] // async: records were lost (Close reports it)

	// down is the running outage: set by a failed write, cleared by a
	// successful one (or a probe, see Ready).
	down      atomic.Pointer[outage]
	probeMu   sync.Mutex
	lastProbe time.Time

	written, blocked, denied, failures, outages atomic.Uint64
	closeOnce                                   sync.Once
}

// NewRecorder wraps inner so that every decision is recorded in l.
func NewRecorder(inner pdp.Decider, l Appender, opts RecorderOptions) (*Recorder, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Mode == "" {
		opts.Mode = ModeSync
	}
	if opts.WhenFull == "" {
		opts.WhenFull = FullBlock
	}
	if opts.Buffer == 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = 1024
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	r := &Recorder{inner: inner, log: l, opts: opts, logger: opts.Logger}
	r.reserver, _ = inner.(pdp.Reserver)
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	if opts.Mode == ModeAsync {
		r.buf = make(chan trail.Record, opts.Buffer)
		r.drained = make(chan struct{})
		go r.drain()
	}
	return r, nil
}

// DecisionBody is the body of a decision record: the decision (with its
// complete Cedar input and the facts it relied on), the request as
// received, and which PDP instance and build answered.
type DecisionBody struct {
	Decision pdp.Decision `json:"decision"`
	Request  pdp.Request  `json:"request"`
	Instance string       `json:"instance"`
	Build    string       `json:"build"`
}

// record builds the decision record. With a non-nil scratch the body is
// encoded into *scratch, a pooled buffer the caller gives back with
// releaseBody once the trail has the record; otherwise into a slice of
// its own.
func (r *Recorder) record(req pdp.Request, d pdp.Decision, scratch **[]byte) (trail.Record, error) {
	db := &DecisionBody{Decision: d, Request: req, Instance: r.opts.Instance, Build: r.opts.Build}
	var body []byte
	var err error
	if scratch != nil && r.opts.Redactor == nil {
		p := bufPool.Get().(*[]byte)
		body, err = appendDecisionBody((*p)[:0], db)
		*p, *scratch = body, p
	} else {
		body, err = encodeDecisionBody(db)
	}
	if err != nil {
		return trail.Record{}, fmt.Errorf("trail: encode decision %s: %w", d.ID, err)
	}
	if r.opts.Redactor == nil {
		// The encoder's output is canonical JSON already: the trail
		// need not compact it again.
		return trail.CompactRecord(KindDecision, d.ID, d.Time, body), nil
	}
	if body, err = r.redact(body); err != nil {
		return trail.Record{}, fmt.Errorf("trail: redact decision %s: %w", d.ID, err)
	}
	return trail.Record{Kind: KindDecision, ID: d.ID, Time: d.Time, Body: body}, nil
}

// releaseBody gives back the buffers record encoded bodies into.
func releaseBody(ps []*[]byte) {
	for _, p := range ps {
		if cap(*p) <= maxPooled {
			*p = (*p)[:0]
			bufPool.Put(p)
		}
	}
}

// redact applies the configured redaction to a record body.
func (r *Recorder) redact(body []byte) ([]byte, error) {
	if r.opts.Redactor == nil {
		return body, nil
	}
	return r.opts.Redactor.Redact(body)
}

// Decide decides req and records the decision. What the decision changes
// in the engine's counters (a velocity rule's denial, a reported step-up
// outcome) is made once its record is written (sync) or buffered
// (async), and not at all when the decision becomes a trail_unavailable
// deny: no record, no change.
func (r *Recorder) Decide(ctx context.Context, req pdp.Request) (pdp.Decision, error) {
	var (
		d   pdp.Decision
		p   *pdp.Pending
		err error
	)
	if r.reserver != nil {
		d, p, err = r.reserver.DecideReserved(ctx, req)
	} else {
		d, err = r.inner.Decide(ctx, req)
	}
	if err != nil {
		r.settle(ctx, p, allOf(1)) // no record: nothing it reserved is made
		return d, err
	}
	ds := []pdp.Decision{d}
	settled := false
	defer r.settleOnPanic(ctx, p, 1, &settled)
	r.settle(ctx, p, r.save(ctx, []pdp.Request{req}, ds, p))
	settled = true
	return ds[0], nil
}

// DecideBatch decides reqs and records every decision; each item's
// changes to the counters are made or dropped like Decide's.
func (r *Recorder) DecideBatch(ctx context.Context, reqs []pdp.Request) ([]pdp.Decision, error) {
	var (
		ds  []pdp.Decision
		p   *pdp.Pending
		err error
	)
	if r.reserver != nil {
		ds, p, err = r.reserver.DecideBatchReserved(ctx, reqs)
	} else {
		ds, err = r.inner.DecideBatch(ctx, reqs)
	}
	if err != nil || len(ds) != len(reqs) {
		r.settle(ctx, p, allOf(max(len(ds), len(reqs))))
		return ds, err // the api layer reports the mismatch
	}
	settled := false
	defer r.settleOnPanic(ctx, p, len(ds), &settled)
	r.settle(ctx, p, r.save(ctx, reqs, ds, p))
	settled = true
	return ds, nil
}

// settle drops the counter changes of the decisions whose records failed
// and commits the others (telling the sidecars of a block or hold that
// began or ended).
func (r *Recorder) settle(ctx context.Context, p *pdp.Pending, failed []int) {
	for _, i := range failed {
		p.Drop(i)
	}
	p.Commit(ctx)
}

// settleOnPanic drops every change of p when recording panicked before
// they were settled (the api layer recovers panics, and changes left
// pending would count for everyone, unevictably).
func (r *Recorder) settleOnPanic(ctx context.Context, p *pdp.Pending, n int, settled *bool) {
	if !*settled {
		r.settle(context.WithoutCancel(ctx), p, allOf(n))
	}
}

// allOf is the indexes 0…n-1.
func allOf(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// save records ds (decided for reqs), turning each decision whose record
// could not be written or buffered into a trail_unavailable deny; it
// returns their indexes. Once a decision whose success lifted a hold for
// the later decisions of the batch fails (p.Resets), those later ones
// fail too: they were answered with a lift no record explains.
func (r *Recorder) save(ctx context.Context, reqs []pdp.Request, ds []pdp.Decision, p *pdp.Pending) (failed []int) {
	var cutErr error // set once a failed decision had lifted a hold
	recs := make([]trail.Record, 0, len(ds))
	idx := make([]int, 0, len(ds))
	// sync: the bodies are encoded into pooled buffers, given back once
	// Append returns (the trail has copied the records by then). Async
	// records wait in the buffer, where exact-sized copies cost less than
	// a pool that a thousand waiting records drain at every GC.
	isSync := r.opts.Mode == ModeSync
	var one [1]*[]byte
	pooled := one[:0]
	for i := range ds {
		var scratch *[]byte
		var sp **[]byte
		if isSync {
			sp = &scratch
		}
		if cutErr != nil {
			r.fail(&ds[i], cutErr)
			failed = append(failed, i)
			continue
		}
		rec, err := r.record(reqs[i], ds[i], sp)
		if scratch != nil {
			pooled = append(pooled, scratch)
		}
		if err != nil {
			r.fail(&ds[i], err)
			failed = append(failed, i)
			if p.Resets(i) {
				cutErr = fmt.Errorf("an earlier decision of the batch that lifted a hold was not recorded: %w", err)
			}
			continue
		}
		recs, idx = append(recs, rec), append(idx, i)
	}
	defer releaseBody(pooled)
	if len(recs) == 0 {
		return failed
	}
	if isSync {
		if _, err := r.log.Append(ctx, recs...); err != nil {
			r.failures.Add(uint64(len(recs)))
			r.logger.LogAttrs(ctx, slog.LevelError, "decision trail write failed; answering deny trail_unavailable",
				slog.Int("records", len(recs)), slog.String("error", err.Error()))
			for _, i := range idx {
				r.fail(&ds[i], err)
			}
			if ctx.Err() == nil { // a caller that gave up is no trail failure
				r.lost(err, largest(recs))
			}
			return append(failed, idx...)
		}
		r.written.Add(uint64(len(recs)))
		r.wrote()
		return failed
	}
	for k, rec := range recs {
		err := cutErr
		if err == nil {
			err = r.enqueue(ctx, rec)
		}
		if err != nil {
			r.fail(&ds[idx[k]], err)
			failed = append(failed, idx[k])
			if cutErr == nil && p.Resets(idx[k]) {
				cutErr = fmt.Errorf("an earlier decision of the batch that lifted a hold was not recorded: %w", err)
			}
		}
	}
	return failed
}

// fail turns d into a deny that says its record is missing.
func (r *Recorder) fail(d *pdp.Decision, err error) {
	r.denied.Add(1)
	d.Allowed = false
	d.Policies = []string{}
	d.Obligations = []string{}
	d.Reasons = []string{ReasonTrailUnavailable}
	d.Message = "the decision could not be recorded in the decision trail: " + err.Error()
}

// enqueue hands rec to the async drainer, as the full-buffer rule says.
// While the trail is down nothing is accepted (its answer would go out
// with no record behind it) until a probe write succeeds.
func (r *Recorder) enqueue(ctx context.Context, rec trail.Record) error {
	if o := r.down.Load(); o != nil {
		if err := r.probe(ctx, o); err != nil {
			return fmt.Errorf("an earlier write failed: %w", err)
		}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return trail.ErrClosed
	}
	select {
	case r.buf <- rec:
		return nil
	default:
	}
	if r.opts.WhenFull == FullDeny {
		return errBufferFull
	}
	r.blocked.Add(1)
	select {
	case r.buf <- rec:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for room in the trail buffer: %w", ctx.Err())
	}
}

// drain writes buffered records in batches until Close closes the buffer.
func (r *Recorder) drain() {
	defer close(r.drained)
	batch := make([]trail.Record, 0, r.opts.MaxBatch)
	var timer *time.Timer
	for rec := range r.buf {
		batch = append(batch[:0], rec)
		var deadline <-chan time.Time
		if r.opts.FlushInterval > 0 {
			if timer == nil {
				timer = time.NewTimer(r.opts.FlushInterval)
			} else {
				timer.Reset(r.opts.FlushInterval)
			}
			deadline = timer.C
		}
	more:
		for len(batch) < r.opts.MaxBatch {
			if deadline == nil {
				select {
				case rec, ok := <-r.buf:
					if !ok {
						break more
					}
					batch = append(batch, rec)
				default:
					break more
				}
				continue
			}
			select {
			case rec, ok := <-r.buf:
				if !ok {
					break more
				}
				batch = append(batch, rec)
			case <-deadline:
				deadline = nil
				break more
			}
		}
		if deadline != nil {
			timer.Stop() // Go 1.23+ timers: no stale tick after Stop
		}
		if _, err := r.log.Append(context.Background(), batch...); err != nil {
			// The outage is marked before the failure is counted: who
			// sees the count sees later decisions denied.
			r.lost(err, largest(batch))
			r.failures.Add(uint64(len(batch)))
			lostErr := fmt.Errorf("records were lost: %w", err)
			r.failed.CompareAndSwap(nil, &lostErr)
			r.logger.LogAttrs(context.Background(), slog.LevelError,
				"decision trail write failed; these records are lost and later decisions are denied with trail_unavailable",
				slog.Int("records", len(batch)), slog.String("first_decision_id", batch[0].ID), slog.String("error", err.Error()))
			continue
		}
		r.written.Add(uint64(len(batch)))
		r.wrote()
	}
}

// Close stops accepting records and, in async mode, waits until every
// buffered record has been handed to the log. It does not close the log.
func (r *Recorder) Close() error {
	r.closeOnce.Do(func() {
		if r.buf == nil {
			return
		}
		r.mu.Lock()
		r.closed = true
		close(r.buf)
		r.mu.Unlock()
		<-r.drained
	})
	if p := r.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Stats returns the counters.
func (r *Recorder) Stats() RecorderStats {
	s := RecorderStats{Written: r.written.Load(), Blocked: r.blocked.Load(), Denied: r.denied.Load(), Failures: r.failures.Load()}
	if r.buf != nil {
		s.Buffered = len(r.buf)
	}
	return s
}

// KindSearch is the Record.Kind of an AuthZEN search answer.
const KindSearch = "search"

// ErrRecordFailed wraps the error of a search whose record could not be
// written: the search is not answered.
var ErrRecordFailed = errors.New("trail: the answer could not be recorded")

// SearchBody is the body of a search record: the request as received, who
// asked, and what the PDP answered.
type SearchBody struct {
	Search      string       `json:"search"` // subject, resource or action
	Application string       `json:"application,omitempty"`
	Request     pdp.Request  `json:"request"`
	Results     []pdp.Entity `json:"results,omitempty"`
	Actions     []string     `json:"actions,omitempty"`
	Instance    string       `json:"instance"`
	Build       string       `json:"build"`
	DurationNS  int64        `json:"duration_ns"`
}

// saveSearch records a search answer as the mode says: in sync mode the
// answer is given only once its record is durable.
func (r *Recorder) saveSearch(ctx context.Context, b SearchBody, start time.Time) error {
	b.Application, b.Instance, b.Build = b.Request.Application, r.opts.Instance, r.opts.Build
	b.DurationNS = time.Since(start).Nanoseconds()
	body, err := json.Marshal(b)
	if err == nil {
		body, err = r.redact(body)
	}
	if err != nil {
		return fmt.Errorf("%w: encode: %v", ErrRecordFailed, err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRecordFailed, err)
	}
	rec := trail.Record{Kind: KindSearch, ID: id.String(), Time: start.UTC(), Body: body}
	if r.opts.Mode == ModeSync {
		if _, err := r.log.Append(ctx, rec); err != nil {
			r.failures.Add(1)
			r.denied.Add(1)
			if ctx.Err() == nil {
				r.lost(err, len(body))
			}
			return fmt.Errorf("%w: %v", ErrRecordFailed, err)
		}
		r.written.Add(1)
		r.wrote()
		return nil
	}
	if err := r.enqueue(ctx, rec); err != nil {
		r.denied.Add(1)
		return fmt.Errorf("%w: %v", ErrRecordFailed, err)
	}
	return nil
}

// SearchSubjects answers a subject search from the wrapped decider and
// records the answer.
func (r *Recorder) SearchSubjects(ctx context.Context, req pdp.Request) ([]pdp.Entity, error) {
	s, ok := r.inner.(pdp.Searcher)
	if !ok {
		return nil, ErrNoSearch
	}
	start := time.Now()
	out, err := s.SearchSubjects(ctx, req)
	if err != nil {
		return out, err
	}
	return out, r.saveSearch(ctx, SearchBody{Search: "subject", Request: req, Results: out}, start)
}

// SearchResources answers a resource search and records the answer.
func (r *Recorder) SearchResources(ctx context.Context, req pdp.Request) ([]pdp.Entity, error) {
	s, ok := r.inner.(pdp.Searcher)
	if !ok {
		return nil, ErrNoSearch
	}
	start := time.Now()
	out, err := s.SearchResources(ctx, req)
	if err != nil {
		return out, err
	}
	return out, r.saveSearch(ctx, SearchBody{Search: "resource", Request: req, Results: out}, start)
}

// SearchActions answers an action search and records the answer.
func (r *Recorder) SearchActions(ctx context.Context, req pdp.Request) ([]string, error) {
	s, ok := r.inner.(pdp.Searcher)
	if !ok {
		return nil, ErrNoSearch
	}
	start := time.Now()
	out, err := s.SearchActions(ctx, req)
	if err != nil {
		return out, err
	}
	return out, r.saveSearch(ctx, SearchBody{Search: "action", Request: req, Actions: out}, start)
}

var (
	descWritten  = prometheus.NewDesc("pdp_trail_records_total", "Decision records the trail acknowledged as durable.", nil, nil)
	descBlocked  = prometheus.NewDesc("pdp_trail_blocked_total", "Decisions that waited for room in the async trail buffer.", nil, nil)
	descDenied   = prometheus.NewDesc("pdp_trail_denied_total", "Decisions answered deny trail_unavailable because their record could not be written or buffered.", nil, nil)
	descFailures = prometheus.NewDesc("pdp_trail_failures_total", "Decision records the trail failed to write.", nil, nil)
	descBuffered = prometheus.NewDesc("pdp_trail_buffered", "Decision records waiting in the async trail buffer.", nil, nil)
	descWrites   = prometheus.NewDesc("pdp_trail_writes_total", "Writes (each with one fsync) the file trail made; records per write is the group commit's batch size.", nil, nil)
)

// writeCounter is what a log that counts its group commits offers
// (*trail.FileLog).
type writeCounter interface{ Stats() trail.Stats }

// Describe implements prometheus.Collector.
func (r *Recorder) Describe(ch chan<- *prometheus.Desc) {
	ch <- descWritten
	ch <- descBlocked
	ch <- descDenied
	ch <- descFailures
	ch <- descBuffered
	if _, ok := r.log.(writeCounter); ok {
		ch <- descWrites
	}
	r.describeOutages(ch)
}

// Collect implements prometheus.Collector.
func (r *Recorder) Collect(ch chan<- prometheus.Metric) {
	s := r.Stats()
	ch <- prometheus.MustNewConstMetric(descWritten, prometheus.CounterValue, float64(s.Written))
	ch <- prometheus.MustNewConstMetric(descBlocked, prometheus.CounterValue, float64(s.Blocked))
	ch <- prometheus.MustNewConstMetric(descDenied, prometheus.CounterValue, float64(s.Denied))
	ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(s.Failures))
	ch <- prometheus.MustNewConstMetric(descBuffered, prometheus.GaugeValue, float64(s.Buffered))
	if w, ok := r.log.(writeCounter); ok {
		ch <- prometheus.MustNewConstMetric(descWrites, prometheus.CounterValue, float64(w.Stats().Batches))
	}
	r.collectOutages(ch)
}

// KindAdmin is the Record.Kind of an administrative action: a consent or
// delegation change, a policy version put into service, a read of the
// trail.
const KindAdmin = "admin"

// AdminBody is the body of an administrative record.
type AdminBody struct {
	Action      string `json:"action"` // "consent.withdraw", "delegation.revoke", "policy.activate", "trail.read", …
	Application string `json:"application,omitempty"`
	Target      string `json:"target,omitempty"` // what it acted on: a delegation id, a data subject, a policy version
	Detail      any    `json:"detail,omitempty"`
	Instance    string `json:"instance"`
	Build       string `json:"build"`
}

// RecordAdmin writes an administrative action into the trail and returns
// once it is durable, whatever the mode: administrative actions are rare,
// and one that is answered must be on record.
func (r *Recorder) RecordAdmin(ctx context.Context, action, application, target string, detail any) error {
	body, err := r.adminBody(action, application, target, detail)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("trail: record id: %w", err)
	}
	if _, err := r.log.Append(ctx, trail.Record{Kind: KindAdmin, ID: id.String(), Time: now, Body: body}); err != nil {
		r.failures.Add(1)
		if ctx.Err() == nil {
			r.lost(err, len(body))
		}
		return fmt.Errorf("trail: record %s: %w", action, err)
	}
	r.written.Add(1)
	r.wrote()
	return nil
}

// adminBody encodes (and redacts) the body of an administrative record.
func (r *Recorder) adminBody(action, application, target string, detail any) ([]byte, error) {
	body, err := json.Marshal(AdminBody{Action: action, Application: application, Target: target, Detail: detail,
		Instance: r.opts.Instance, Build: r.opts.Build})
	if err == nil {
		body, err = r.redact(body)
	}
	if err != nil {
		return nil, fmt.Errorf("trail: encode %s: %w", action, err)
	}
	return body, nil
}
