package console

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
)

// customerView is a customer's page: the delegations they gave and hold
// and their consent events, on one timeline, each with the decisions that
// relied on it.
type customerView struct {
	Ref      string
	Given    []delegationRow
	Held     []delegationRow
	Consents []consentRow
	Timeline customerTimeline
	Problems []string
}

type delegationRow struct {
	D         delegation.Delegation
	State     string // the status in force now (expired, not yet valid…)
	Other     string // the agent (given) or the principal (held)
	Limit     string
	Decisions uint64
	Link      string
}

type consentRow struct {
	E         consent.Event
	Decisions uint64
	Link      string
}

// customerTimeline is every event in three lanes on one time axis.
type customerTimeline struct {
	Width, Height int
	Lanes         []lane
	Points        []point
	From, To      string
}

type lane struct {
	Y    int
	Name string
}

type point struct {
	X, Y  int
	DY    int // the label's offset: above, or below when crowded
	Label string
	Title string
	Class string
}

const (
	laneGap    = 60
	laneTop    = 40
	tlWidth    = 900
	tlLeft     = 130
	tlRightPad = 40
)

func (c *Console) customer(w http.ResponseWriter, r *http.Request, ses *session) {
	ref := r.PathValue("ref")
	typ, id, ok := strings.Cut(ref, ":")
	if !ok || typ == "" || id == "" {
		c.fail(w, r, ses, fmt.Errorf("%w: customer %q must be type:id, e.g. user:alice", audit.ErrBadFilter, ref))
		return
	}
	if err := c.recordRead(r, ses, ref, map[string]any{"endpoint": "console.customer"}); err != nil {
		c.fail(w, r, ses, err)
		return
	}
	ctx := r.Context()
	v := customerView{Ref: ref}
	if ds := c.deps.Delegations; ds != nil {
		dref := delegation.Ref{Type: typ, ID: id}
		given, err := ds.List(ctx, delegation.Filter{Principal: &dref})
		if err != nil {
			v.Problems = append(v.Problems, "delegations given: "+err.Error())
		}
		held, err := ds.List(ctx, delegation.Filter{Agent: &dref})
		if err != nil {
			v.Problems = append(v.Problems, "delegations held: "+err.Error())
		}
		for _, d := range given {
			v.Given = append(v.Given, c.delegationRow(ctx, d, d.Agent.String()))
		}
		for _, d := range held {
			v.Held = append(v.Held, c.delegationRow(ctx, d, d.Principal.String()))
		}
	}
	if cs := c.deps.Consents; cs != nil {
		events, err := cs.HistoryFor(ctx, consent.Ref{Type: typ, ID: id}, consent.Reader{Admin: true})
		if err != nil {
			v.Problems = append(v.Problems, "consents: "+err.Error())
		}
		for _, e := range events {
			row := consentRow{E: e}
			if e.GrantID != "" {
				row.Decisions, row.Link = c.relying(ctx, audit.Filter{ConsentGrant: e.GrantID}, "consent_grant", e.GrantID)
			}
			v.Consents = append(v.Consents, row)
		}
	}
	v.Timeline = layoutCustomer(v)
	c.render(w, r, http.StatusOK, "customer", ses, v)
}

func (c *Console) delegationRow(ctx context.Context, d delegation.Delegation, other string) delegationRow {
	row := delegationRow{D: d, Other: other, Limit: limitOf(d.Constraints), State: string(d.Effective(c.now()))}
	row.Decisions, row.Link = c.relying(ctx, audit.Filter{Delegation: d.ID}, "delegation", d.ID)
	return row
}

// relying counts the decisions that relied on a record and links to them.
func (c *Console) relying(ctx context.Context, f audit.Filter, param, value string) (uint64, string) {
	res, err := c.deps.Auditor.QueryPage(ctx, f, 0, 1)
	if err != nil {
		c.log.Warn("console: decisions relying on a record", "filter", f, "error", err)
		return 0, ""
	}
	return res.Matched, Prefix + "decisions?" + url.Values{param: {value}}.Encode()
}

// layoutCustomer places every delegation and consent event on one axis.
func layoutCustomer(v customerView) customerTimeline {
	type ev struct {
		at    time.Time
		lane  int
		label string
		title string
		class string
	}
	var evs []ev
	for i, rows := range [][]delegationRow{v.Given, v.Held} {
		for _, row := range rows {
			for _, h := range row.D.History {
				evs = append(evs, ev{h.At, i, h.Type, row.D.ID + " " + h.Type + " " + h.At.UTC().Format(time.DateTime), "ev-" + h.Type})
			}
		}
	}
	for _, row := range v.Consents {
		e := row.E
		evs = append(evs, ev{e.At, 2, string(e.Type), e.Purpose + " " + string(e.Type) + " " + e.At.UTC().Format(time.DateTime), "ev-" + string(e.Type)})
	}
	tl := customerTimeline{Width: tlWidth, Height: laneTop + 3*laneGap,
		Lanes: []lane{{laneTop + 20, "delegations given"}, {laneTop + 20 + laneGap, "delegations held"}, {laneTop + 20 + 2*laneGap, "consents"}}}
	if len(evs) == 0 {
		return tl
	}
	slices.SortFunc(evs, func(a, b ev) int { return a.at.Compare(b.at) })
	lo, hi := evs[0].at, evs[len(evs)-1].at
	scale := axis(lo, hi, tlLeft, tlWidth-tlRightPad)
	tl.From, tl.To = lo.UTC().Format(time.DateOnly), hi.UTC().Format(time.DateOnly)
	lastX := map[int]int{}
	for _, e := range evs {
		x := scale(e.at)
		// Labels of events close together alternate above and below.
		dy := -10
		if prev, ok := lastX[e.lane]; ok && x-prev < 60 {
			dy = 22
		}
		lastX[e.lane] = x
		tl.Points = append(tl.Points, point{X: x, Y: tl.Lanes[e.lane].Y, DY: dy, Label: e.label, Title: e.title, Class: cmp.Or(e.class, "ev")})
	}
	return tl
}
