package console

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/policy"
)

// ProposalLoader loads the bundle a what-if replays under: a folder, or a
// Git revision (pdp/server.LoadProposed).
type ProposalLoader func(ctx context.Context, arg string) (*policy.Bundle, error)

// whatIfRun is a what-if replay in the background, polled by its page.
type whatIfRun struct {
	ID       string
	Proposed string
	Started  time.Time
	mu       sync.Mutex
	done     bool
	read     uint64
	total    uint64
	report   audit.WhatIfReport
	err      error
}

// whatIfRuns keeps the recent what-if runs (the last maxJobs).
type whatIfRuns struct {
	mu    sync.Mutex
	m     map[string]*whatIfRun
	order []string
}

func (ws *whatIfRuns) add(w *whatIfRun) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.m == nil {
		ws.m = map[string]*whatIfRun{}
	}
	ws.m[w.ID] = w
	ws.order = append(ws.order, w.ID)
	if len(ws.order) > maxJobs {
		delete(ws.m, ws.order[0])
		ws.order = ws.order[1:]
	}
}

func (ws *whatIfRuns) get(id string) (*whatIfRun, bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w, ok := ws.m[id]
	return w, ok
}

// whatIfView is the what-if page: the form, or one run.
type whatIfView struct {
	Enabled  bool
	ID       string
	Proposed string
	Done     bool
	Read     uint64
	Total    uint64
	Elapsed  string
	Report   audit.WhatIfReport
	Error    string
	Flips    []audit.Item
}

func (v whatIfView) refresh() int {
	if v.ID == "" || v.Done {
		return 0
	}
	return 1
}

// maxFlipsShown bounds the flips listed on the page (the counts are complete).
const maxFlipsShown = 200

func (c *Console) whatIfForm(w http.ResponseWriter, r *http.Request, ses *session) {
	c.render(w, r, http.StatusOK, "whatif", ses, whatIfView{Enabled: c.deps.Proposals != nil && c.deps.Trail != nil})
}

func (c *Console) startWhatIf(w http.ResponseWriter, r *http.Request, ses *session) {
	if c.deps.Proposals == nil || c.deps.Trail == nil {
		c.renderError(w, r, ses, http.StatusNotFound, "what-if is not available on this PDP")
		return
	}
	arg := strings.TrimSpace(r.PostFormValue("policies"))
	if arg == "" {
		c.renderError(w, r, ses, http.StatusBadRequest, "name a bundle folder or a Git revision")
		return
	}
	if err := c.recordRead(r, ses, arg, map[string]any{"endpoint": "console.whatif"}); err != nil {
		c.fail(w, r, ses, err)
		return
	}
	run := &whatIfRun{ID: randomToken()[:16], Proposed: arg, Started: c.now()}
	c.whatIfs.add(run)
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), verifyTimeout)
		defer cancel()
		var rep audit.WhatIfReport
		b, err := c.deps.Proposals(ctx, arg)
		if err == nil {
			rep, err = audit.WhatIf(ctx, c.deps.Trail, b, audit.ReplayOptions{ProgressEvery: 1000, Progress: func(done, total uint64) {
				run.mu.Lock()
				run.read, run.total = done, total
				run.mu.Unlock()
			}})
		}
		run.mu.Lock()
		defer run.mu.Unlock()
		run.done, run.report, run.err = true, rep, err
	}()
	http.Redirect(w, r, Prefix+"whatif/"+run.ID, http.StatusSeeOther)
}

func (c *Console) whatIfPage(w http.ResponseWriter, r *http.Request, ses *session) {
	run, ok := c.whatIfs.get(r.PathValue("run"))
	if !ok {
		c.renderError(w, r, ses, http.StatusNotFound, "no such what-if run (the console keeps the last 16)")
		return
	}
	run.mu.Lock()
	v := whatIfView{Enabled: true, ID: run.ID, Proposed: run.Proposed, Done: run.done, Read: run.read, Total: run.total, Report: run.report}
	if run.err != nil {
		v.Error = run.err.Error()
	}
	run.mu.Unlock()
	v.Elapsed = c.now().Sub(run.Started).Round(100 * time.Millisecond).String()
	if v.Done {
		v.Elapsed = v.Report.Elapsed.Round(time.Millisecond).String()
	}
	v.Flips = v.Report.Flips[:min(len(v.Report.Flips), maxFlipsShown)]
	c.render(w, r, http.StatusOK, "whatif", ses, v)
}
