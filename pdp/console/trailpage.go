package console

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/ciampdp/pdp/pdp/trail"
)

// trailView is the trail page.
type trailView struct {
	Size       uint64
	HasCP      bool
	Checkpoint int
	CPSize     uint64
	CPRoot     string
	Key        string
	Unanchored uint64
	Recent     []trail.Record // the unanchored records, newest first (at most 50)
	Chart      chart
	Problem    string
}

// chart is decisions per minute over the last chartMinutes, as SVG bars.
type chart struct {
	Width, Height int
	Bars          []bar
	Max           int
	Total         int
	From, To      string
}

type bar struct {
	X, Y, W, H int
	N          int
	Minute     string
}

const (
	chartMinutes = 60
	chartHeight  = 120
	barWidth     = 12
	maxRecent    = 50
)

func (c *Console) trailPage(w http.ResponseWriter, r *http.Request, ses *session) {
	t := c.deps.Trail
	if t == nil {
		c.renderError(w, r, ses, http.StatusNotFound, "this PDP keeps no decision trail")
		return
	}
	if err := c.recordRead(r, ses, "", map[string]any{"endpoint": "console.trail"}); err != nil {
		c.fail(w, r, ses, err)
		return
	}
	v := trailView{Size: t.Size()}
	cps := t.Checkpoints()
	if len(cps) > 0 {
		head, err := trail.OpenCheckpoint(c.deps.VerifierKey, cps[len(cps)-1])
		if err != nil {
			v.Problem = "the latest checkpoint does not open with this PDP's verifier key: " + err.Error()
		} else {
			v.HasCP, v.Checkpoint, v.CPSize = true, len(cps), head.Size
			v.CPRoot = head.Root.String()
			v.Key = keyName(c.deps.VerifierKey)
		}
	}
	if v.Size > v.CPSize {
		v.Unanchored = v.Size - v.CPSize
	}
	from := max(v.CPSize, v.Size-min(v.Size, maxRecent))
	err := t.Scan(from, v.Size, func(rec trail.Record) error {
		v.Recent = append([]trail.Record{rec}, v.Recent...)
		return nil
	})
	if err == nil {
		v.Chart, err = c.perMinute(r.Context())
	}
	if err != nil {
		c.fail(w, r, ses, err)
		return
	}
	c.render(w, r, http.StatusOK, "trail", ses, v)
}

// perMinute charts the decisions of the last chartMinutes.
func (c *Console) perMinute(ctx context.Context) (chart, error) {
	now := c.now().UTC().Truncate(time.Minute)
	start := now.Add(-(chartMinutes - 1) * time.Minute)
	counts, err := c.deps.Auditor.PerMinute(ctx, start, chartMinutes)
	if err != nil {
		return chart{}, err
	}
	ch := chart{Width: chartMinutes*barWidth + 60, Height: chartHeight + 30,
		From: start.Format("15:04"), To: now.Format("15:04 MST")}
	for _, n := range counts {
		ch.Max = max(ch.Max, n)
		ch.Total += n
	}
	for i, n := range counts {
		h := 0
		if ch.Max > 0 {
			h = n * chartHeight / ch.Max
		}
		ch.Bars = append(ch.Bars, bar{X: 40 + i*barWidth, Y: 10 + chartHeight - h, W: barWidth - 2, H: h, N: n,
			Minute: start.Add(time.Duration(i) * time.Minute).Format("15:04")})
	}
	return ch, nil
}

// job is a verify run in the background, polled by its page.
type job struct {
	ID      string
	Started time.Time
	Size    uint64
	mu      sync.Mutex
	done    bool
	report  trail.Report
	err     error
	took    time.Duration
}

// jobs keeps the recent verify runs (the last maxJobs).
type jobs struct {
	mu    sync.Mutex
	m     map[string]*job
	order []string
}

const maxJobs = 16

func newJobs() *jobs { return &jobs{m: map[string]*job{}} }

func (js *jobs) add(j *job) {
	js.mu.Lock()
	defer js.mu.Unlock()
	js.m[j.ID] = j
	js.order = append(js.order, j.ID)
	if len(js.order) > maxJobs {
		delete(js.m, js.order[0])
		js.order = js.order[1:]
	}
}

func (js *jobs) get(id string) (*job, bool) {
	js.mu.Lock()
	defer js.mu.Unlock()
	j, ok := js.m[id]
	return j, ok
}

// verifyTimeout bounds one verify run.
const verifyTimeout = 10 * time.Minute

func (c *Console) startVerify(w http.ResponseWriter, r *http.Request, ses *session) {
	t := c.deps.Trail
	if t == nil || c.deps.VerifierKey == "" {
		c.renderError(w, r, ses, http.StatusNotFound, "this PDP keeps no decision trail")
		return
	}
	if err := c.recordRead(r, ses, "", map[string]any{"endpoint": "console.verify"}); err != nil {
		c.fail(w, r, ses, err)
		return
	}
	j := &job{ID: randomToken()[:16], Started: c.now(), Size: t.Size()}
	c.jobs.add(j)
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), verifyTimeout)
		defer cancel()
		rep, err := c.verifyAll(ctx, t)
		j.mu.Lock()
		defer j.mu.Unlock()
		j.done, j.report, j.err, j.took = true, rep, err, time.Since(j.Started)
	}()
	http.Redirect(w, r, Prefix+"trail/verify/"+j.ID, http.StatusSeeOther)
}

// verifyAll verifies the whole trail, to its end when the store reads it
// (not the size when the job started, which a live PDP passes meanwhile:
// the checks of the whole tree, such as the PostgreSQL head's root, run
// only when the range reaches the end). A panic in the store is reported
// as a failed run, not left to end the PDP.
func (c *Console) verifyAll(ctx context.Context, t Trail) (rep trail.Report, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("console: trail verify panicked", "panic", p, "stack", string(debug.Stack()))
			rep, err = trail.Report{}, fmt.Errorf("the verify run stopped on an internal error: %v", p)
		}
	}()
	return t.Verify(ctx, c.deps.VerifierKey, 0, math.MaxUint64)
}

// verifyView is the page of one verify run.
type verifyView struct {
	ID      string
	Size    uint64
	Done    bool
	Elapsed string
	Report  trail.Report
	Error   string
}

func (v verifyView) refresh() int {
	if v.Done {
		return 0
	}
	return 1
}

func (c *Console) verifyPage(w http.ResponseWriter, r *http.Request, ses *session) {
	j, ok := c.jobs.get(r.PathValue("job"))
	if !ok {
		c.renderError(w, r, ses, http.StatusNotFound, "no such verify run (the console keeps the last 16)")
		return
	}
	j.mu.Lock()
	v := verifyView{ID: j.ID, Size: j.Size, Done: j.done, Report: j.report}
	if j.err != nil {
		v.Error = j.err.Error()
	}
	elapsed := j.took
	if !j.done {
		elapsed = c.now().Sub(j.Started)
	}
	j.mu.Unlock()
	v.Elapsed = fmt.Sprintf("%.1fs", elapsed.Seconds())
	c.render(w, r, http.StatusOK, "verify", ses, v)
}
