// Package ingest owns the storing of the sidecars' decision records in
// the trail: the acceptance rules, the per-sidecar high-water marks
// (exactly once) and the index of decisions it checks them against.
package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
	"github.com/ciampdp/pdp/pdp/trail/pgtrail"
)

// subKey names a sidecar: its application and id (ids are the
// application's to choose).
type subKey struct{ app, id string }

// TrailIngester stores sidecar records in the decision trail:
// *trail.FileLog or *pgtrail.Log. Append returns once the records
// are durable.
type TrailIngester interface {
	Append(ctx context.Context, recs ...trail.Record) ([]uint64, error)
}

// SpoolAppender is a trail shared by replicas that stores each sidecar
// record once by its key, in the transaction of the append
// (*pgtrail.Log): AppendSpool leaves out (seq pgtrail.Skipped) the records whose key is
// stored, and SpoolHigh is the highest spool seq stored for a sidecar by
// any replica.
type SpoolAppender interface {
	AppendSpool(ctx context.Context, keys []pgtrail.SpoolKey, recs ...trail.Record) ([]uint64, error)
	SpoolHigh(ctx context.Context, app, sidecar string) (uint64, error)
	// SidecarOwner is the application of the first record stored under
	// the sidecar id by any replica ("" when none).
	SidecarOwner(ctx context.Context, sidecar string) (string, error)
}

// TrailScanner reads the trail back: *trail.FileLog or *pgtrail.Log.
type TrailScanner interface {
	Size() uint64
	Scan(from, to uint64, fn func(trail.Record) error) error
}

var (
	_ TrailIngester = (*trail.FileLog)(nil)
	_ TrailIngester = (*pgtrail.Log)(nil)
	_ TrailScanner  = (*trail.FileLog)(nil)
	_ TrailScanner  = (*pgtrail.Log)(nil)
	_ SpoolAppender = (*pgtrail.Log)(nil)
)

// Options configures an Ingest.
type Options struct {
	// Redact, when set, is applied to each sidecar record before it is
	// stored (the trail's redaction rules: (*trail.Redactor).Redact).
	Redact func([]byte) ([]byte, error)
	Logger *slog.Logger
}

// Ingest appends the decision records of sidecars to the trail, exactly
// once: each sidecar numbers its records (its spool seq, strictly
// increasing), and a record whose seq is not above the highest stored for
// that sidecar is skipped. The highest seq of every sidecar (by
// application and sidecar id) is kept in memory and rebuilt from the trail
// by New.
//
// With the PostgreSQL store shared by several replicas (a SpoolAppender),
// the highest seq in memory is only a lower bound: each request first
// reads the highest stored by any replica, and the append itself leaves
// out, in its transaction, the records whose (application, sidecar, spool
// seq) is stored. So a retry that reaches another replica than the first
// attempt (which may have died after its commit) is stored once.
type Ingest struct {
	log    TrailIngester
	scan   TrailScanner // nil: no look-ups in the trail
	redact func([]byte) ([]byte, error)
	logger *slog.Logger

	mu     sync.Mutex
	spools map[subKey]*spool
	bound  map[string]string // sidecar id → the application it belongs to

	index  *decisionIndex // central decisions and stored sidecar records, by id
	scanMu sync.Mutex     // one look-up scan of the trail at a time

	ingested, skipped, gaps atomic.Uint64
}

// spool is what is stored of one sidecar's spool.
type spool struct {
	mu    sync.Mutex // held across an Append: one batch of a sidecar at a time
	acked uint64     // the highest spool seq stored
}

var _ prometheus.Collector = (*Ingest)(nil)

// New returns an Ingest that appends to log, after scanning the
// trail (scan) for the sidecar records already stored. The scan reads the
// whole trail once.
func New(ctx context.Context, log TrailIngester, scan TrailScanner, opts Options) (*Ingest, error) {
	in := &Ingest{log: log, scan: scan, redact: opts.Redact, logger: opts.Logger, spools: make(map[subKey]*spool),
		bound: make(map[string]string), index: newDecisionIndex()}
	if in.logger == nil {
		in.logger = slog.New(slog.DiscardHandler)
	}
	if scan == nil {
		return in, nil
	}
	recent := time.Now().Add(-indexWindow)
	err := scan.Scan(0, scan.Size(), func(rec trail.Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if rec.Pruned {
			return nil
		}
		if !rec.Time.Before(recent) {
			if k, ok := knownOf(rec); ok {
				in.index.add(rec.ID, k)
			}
		}
		if rec.Kind != trail.KindSidecar {
			return nil
		}
		var b struct {
			Sidecar     string `json:"sidecar"`
			Application string `json:"application"`
			SpoolSeq    uint64 `json:"spool_seq"`
		}
		if err := json.Unmarshal(rec.Body, &b); err != nil {
			return fmt.Errorf("sidecar record %d: %w", rec.Seq, err)
		}
		sp := in.spool(b.Application, b.Sidecar)
		sp.acked = max(sp.acked, b.SpoolSeq)
		if _, ok := in.bound[b.Sidecar]; !ok {
			in.bound[b.Sidecar] = b.Application
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ingest: rebuild the sidecars' ingest positions from the trail: %w", err)
	}
	return in, nil
}

// learnOwner binds sidecar to the application that its first record in
// the shared trail came from, when this replica has not bound it yet (a
// fast refusal; AppendSpool checks it again under the head lock, so two
// applications claiming one new id through two replicas at once cannot
// both be stored).
func (in *Ingest) learnOwner(ctx context.Context, shared SpoolAppender, sidecar string) error {
	in.mu.Lock()
	_, ok := in.bound[sidecar]
	in.mu.Unlock()
	if ok {
		return nil
	}
	owner, err := shared.SidecarOwner(ctx, sidecar)
	if err != nil {
		return fmt.Errorf("%w: %v", recorder.ErrRecordFailed, err)
	}
	if owner != "" {
		in.mu.Lock()
		if _, ok := in.bound[sidecar]; !ok {
			in.bound[sidecar] = owner
		}
		in.mu.Unlock()
	}
	return nil
}

// Acked returns the highest spool seq stored for a sidecar (0: none).
func (in *Ingest) Acked(app, sidecar string) uint64 {
	sp := in.spool(app, sidecar)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.acked
}

func (in *Ingest) spool(app, sidecar string) *spool {
	in.mu.Lock()
	defer in.mu.Unlock()
	k := subKey{app, sidecar}
	sp := in.spools[k]
	if sp == nil {
		sp = &spool{}
		in.spools[k] = sp
	}
	return sp
}

// Record is one record of an ingest request.
type Record struct {
	Seq  uint64          // spool seq
	ID   string          // decision id
	Time time.Time       // when the sidecar decided
	Body json.RawMessage // the sidecar's record, a JSON object
}

// Result is the answer to an ingest request.
type Result struct {
	Ingested int    `json:"ingested"`
	Skipped  int    `json:"skipped"`
	Acked    uint64 `json:"acked"` // the highest spool seq now stored for the sidecar
}

// Ingest stores the records of a batch (in spool order) that are not
// stored yet, in one Append, and returns once they are durable. The
// records to store must pass the checks of checkBatch, all of them, or
// none is stored.
func (in *Ingest) Ingest(ctx context.Context, app, sidecar string, recs []Record) (Result, error) {
	sp := in.spool(app, sidecar)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	shared, _ := in.log.(SpoolAppender)
	if shared != nil {
		// The id may belong to another application through another
		// replica.
		if err := in.learnOwner(ctx, shared, sidecar); err != nil {
			return Result{}, err
		}
	}
	if shared != nil && len(recs) > 0 && recs[len(recs)-1].Seq > sp.acked {
		// Another replica may have stored some of them.
		high, err := shared.SpoolHigh(ctx, app, sidecar)
		if err != nil {
			return Result{}, fmt.Errorf("%w: %v", recorder.ErrRecordFailed, err)
		}
		sp.acked = max(sp.acked, high)
	}
	var (
		res  Result
		out  = make([]trail.Record, 0, len(recs))
		keys = make([]pgtrail.SpoolKey, 0, len(recs))
		prev = sp.acked
	)
	// Retries (records stored already) are skipped before the checks.
	for len(recs) > 0 && recs[0].Seq <= sp.acked {
		res.Skipped++
		recs = recs[1:]
	}
	if err := in.checkBatch(ctx, app, sidecar, recs, res.Skipped); err != nil {
		return Result{}, err
	}
	for i, r := range recs {
		if r.Seq > prev+1 {
			in.gaps.Add(1)
			in.logger.LogAttrs(ctx, slog.LevelWarn, "sidecar spool gap: records missing (cut by the sidecar's spool retention?)",
				slog.String("application", app), slog.String("sidecar", sidecar),
				slog.Uint64("from", prev+1), slog.Uint64("to", r.Seq-1))
		}
		prev = r.Seq
		body := r.Body
		if in.redact != nil {
			var err error
			if body, err = in.redact(body); err != nil {
				return Result{}, fmt.Errorf("%w: records[%d]: redact: %v", recorder.ErrRecordFailed, res.Skipped+i, err)
			}
		}
		rec, err := trail.SidecarRecord(r.ID, r.Time.UTC(), trail.SidecarBody{Sidecar: sidecar, Application: app, SpoolSeq: r.Seq, Record: body})
		if err != nil {
			return Result{}, fmt.Errorf("%w: records[%d]: %v", recorder.ErrRecordFailed, res.Skipped+i, err)
		}
		out = append(out, rec)
		keys = append(keys, pgtrail.SpoolKey{Application: app, Sidecar: sidecar, Seq: r.Seq})
	}
	stored := len(out)
	if len(out) > 0 {
		// Not abandoned when the sidecar goes away: an append it cannot
		// know the outcome of would make its retry a duplicate.
		var (
			seqs []uint64
			err  error
		)
		if shared != nil {
			seqs, err = shared.AppendSpool(context.WithoutCancel(ctx), keys, out...)
		} else {
			seqs, err = in.log.Append(context.WithoutCancel(ctx), out...)
		}
		if err != nil {
			return Result{}, fmt.Errorf("%w: %d sidecar records: %v", recorder.ErrRecordFailed, len(out), err)
		}
		for _, seq := range seqs {
			switch {
			case shared == nil:
			case seq == pgtrail.Refused: // claimed meanwhile by another application
				return Result{}, fmt.Errorf("%w: PDP-Sidecar-Id %q", ErrSidecarBound, sidecar)
			case seq == pgtrail.Skipped: // stored meanwhile through another replica
				stored--
				res.Skipped++
			}
		}
		sp.acked = prev
		in.ingested.Add(uint64(stored))
		_ = in.bind(app, sidecar, true) // checked above
		for _, r := range recs {
			in.index.add(r.ID, known{sidecar: true, app: app, at: r.Time})
		}
	}
	in.skipped.Add(uint64(res.Skipped))
	res.Ingested, res.Acked = stored, sp.acked
	return res, nil
}

var (
	descIngested = prometheus.NewDesc("pdp_trail_ingested_total", "Sidecar records stored in the trail.", nil, nil)
	descSkipped  = prometheus.NewDesc("pdp_trail_ingest_skipped_total", "Sidecar records skipped as already stored (retries).", nil, nil)
	descGaps     = prometheus.NewDesc("pdp_trail_ingest_gaps_total", "Gaps in sidecar spool sequences (records the PDP never received).", nil, nil)
)

// Describe implements prometheus.Collector.
func (in *Ingest) Describe(ch chan<- *prometheus.Desc) {
	ch <- descIngested
	ch <- descSkipped
	ch <- descGaps
}

// Collect implements prometheus.Collector.
func (in *Ingest) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descIngested, prometheus.CounterValue, float64(in.ingested.Load()))
	ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(in.skipped.Load()))
	ch <- prometheus.MustNewConstMetric(descGaps, prometheus.CounterValue, float64(in.gaps.Load()))
}
