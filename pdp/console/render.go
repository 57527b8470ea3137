package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/reason"
)

// pageNames are the templates/*.html pages; each is parsed with base.html.
var pageNames = []string{"login", "error", "decisions", "decision", "customer", "trail", "verify", "whatif"}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05.000 MST")
	},
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
	"date": func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
	"join": strings.Join,
}

func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("base.html").Funcs(funcs).ParseFS(templateFS, "templates/base.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: templates: %w", err)
		}
		pages[name] = t
	}
	return pages, nil
}

// view is what every page's template receives.
type view struct {
	Title   string
	Auditor string // "" when signed out
	CSRF    string
	Refresh int // seconds; 0: none
	Data    any
}

// render writes a page; a template failure is logged and answered 500.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page string, ses *session, data any) {
	v := view{Title: page, Data: data}
	if ses != nil {
		v.Auditor, v.CSRF = ses.auditor, ses.csrf
	}
	if rv, ok := data.(interface{ refresh() int }); ok {
		v.Refresh = rv.refresh()
	}
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, "base.html", v); err != nil {
		c.log.Error("console: render", "page", page, "path", r.URL.Path, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorView is the error page's data.
type errorView struct {
	Status  int
	Message string
	Reason  string
}

func (c *Console) renderError(w http.ResponseWriter, r *http.Request, ses *session, status int, msg string) {
	c.render(w, r, status, "error", ses, errorView{Status: status, Message: msg})
}

// errUnrecorded: the auditor's read could not be recorded in the trail,
// so it is not answered.
var errUnrecorded = errors.New("this read could not be recorded in the decision trail, so it is not shown")

// fail answers err with its status: the only place the console maps
// errors to statuses. Messages of 5xx stay generic; the log has the rest.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, ses *session, err error) {
	status, msg, code := http.StatusInternalServerError, "the console could not answer (see the PDP's log)", ""
	switch {
	case errors.Is(err, audit.ErrBadFilter):
		status, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, audit.ErrNoSuchDecision):
		status, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, errUnrecorded):
		status, msg, code = http.StatusServiceUnavailable, errUnrecorded.Error(), reason.TrailUnavailable
	}
	if status >= 500 {
		c.log.Error("console: "+r.URL.Path, "error", err)
	}
	c.render(w, r, status, "error", ses, errorView{Status: status, Message: msg, Reason: code})
}

// recordRead writes the auditor's read into the trail before it is
// answered, as the audit API does.
func (c *Console) recordRead(r *http.Request, ses *session, target string, detail map[string]any) error {
	if c.deps.Recorder == nil {
		return nil
	}
	if err := c.deps.Recorder.RecordAdmin(r.Context(), "trail.read", ses.auditor, target, detail); err != nil {
		return fmt.Errorf("%w: %w", errUnrecorded, err)
	}
	return nil
}
