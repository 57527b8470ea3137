package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp/trail"
)

// ErrUnavailable is returned by Recorder.Ready while records cannot be
// written: decisions are denied with ReasonTrailUnavailable meanwhile.
var ErrUnavailable = errors.New("the decision trail cannot record decisions")

// ActionRecovered is the admin record written when recording works again
// after a failure: it names when the failure began and why.
const ActionRecovered = "trail.recovered"

// probeEvery bounds how often Ready (and, in async mode, a decision) tries
// a write while the trail is down.
const probeEvery = 250 * time.Millisecond

// outage is a failure to record that has not been followed by a success.
type outage struct {
	err   error
	since time.Time
	size  int // body bytes of the largest record that failed
}

// lost notes a failed write of records whose largest body is size bytes:
// it starts an outage unless one is running.
func (r *Recorder) lost(err error, size int) {
	if errors.Is(err, trail.ErrClosed) { // shutting down: no outage
		return
	}
	o := &outage{err: err, since: time.Now().UTC(), size: size}
	if r.down.CompareAndSwap(nil, o) {
		r.outages.Add(1)
		r.logger.LogAttrs(context.Background(), slog.LevelError,
			"decision trail down: decisions are denied with trail_unavailable until a write succeeds",
			slog.String("error", err.Error()))
	}
}

// wrote notes a successful write: it ends the outage, if any.
func (r *Recorder) wrote() {
	if o := r.down.Swap(nil); o != nil {
		r.logger.LogAttrs(context.Background(), slog.LevelInfo, "decision trail recording again",
			slog.Time("down_since", o.since), slog.Duration("down_for", time.Since(o.since).Round(time.Millisecond)))
	}
}

// Ready returns nil while the trail records, else an error wrapping
// ErrUnavailable with the failure and when it began. While the trail is
// down it tries a write (at most every probeEvery): the ActionRecovered
// record, whose success ends the outage even when no decision comes in
// (a PDP taken out of rotation by its readiness probe gets none).
func (r *Recorder) Ready(ctx context.Context) error {
	o := r.down.Load()
	if o == nil {
		return nil
	}
	if err := r.probe(ctx, o); err != nil {
		return fmt.Errorf("%w since %s: %v", ErrUnavailable, o.since.Format(time.RFC3339), err)
	}
	return nil
}

// probe writes the ActionRecovered record of outage o, unless another
// probe ran less than probeEvery ago (then it returns o's error). The
// record is padded to the size of the largest record that failed: its
// success says such a record fits now (on a nearly full disk, a small one
// may fit where a decision does not).
func (r *Recorder) probe(ctx context.Context, o *outage) error {
	r.probeMu.Lock()
	defer r.probeMu.Unlock()
	if r.down.Load() != o { // another probe (or write) ended it, or a new one began
		if cur := r.down.Load(); cur != nil {
			return cur.err
		}
		return nil
	}
	if time.Since(r.lastProbe) < probeEvery {
		return o.err
	}
	r.lastProbe = time.Now()
	detail := map[string]any{"down_since": o.since, "error": o.err.Error()}
	body, err := r.adminBody(ActionRecovered, "", "", detail)
	if err != nil {
		return err
	}
	if pad := o.size - len(body); pad > 0 {
		detail["padding"] = strings.Repeat(".", pad)
		if body, err = r.adminBody(ActionRecovered, "", "", detail); err != nil {
			return err
		}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	if _, err := r.log.Append(ctx, trail.Record{Kind: KindAdmin, ID: id.String(), Time: time.Now().UTC(), Body: body}); err != nil {
		r.failures.Add(1)
		return err
	}
	r.written.Add(1)
	r.wrote()
	return nil
}

var (
	descDown    = prometheus.NewDesc("pdp_trail_unavailable", "1 while the decision trail cannot record (decisions are denied with trail_unavailable), else 0.", nil, nil)
	descOutages = prometheus.NewDesc("pdp_trail_outages_total", "Times the decision trail stopped recording (a write failed after a success).", nil, nil)
)

func (r *Recorder) describeOutages(ch chan<- *prometheus.Desc) {
	ch <- descDown
	ch <- descOutages
}

func (r *Recorder) collectOutages(ch chan<- prometheus.Metric) {
	down := 0.0
	if r.down.Load() != nil {
		down = 1
	}
	ch <- prometheus.MustNewConstMetric(descDown, prometheus.GaugeValue, down)
	ch <- prometheus.MustNewConstMetric(descOutages, prometheus.CounterValue, float64(r.outages.Load()))
}

// largest is the size of the largest body among recs.
func largest(recs []trail.Record) int {
	n := 0
	for _, rec := range recs {
		n = max(n, len(rec.Body))
	}
	return n
}
