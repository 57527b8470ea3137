package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"golang.org/x/mod/sumdb/note"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/trail"
)

// decisionView is the page of one decision.
type decisionView struct {
	Ex       audit.Explanation
	Replay   replayStamp
	Proof    proofStamp
	Chain    *chainGraph // nil: no delegation
	Consent  *timeline   // nil: no consent check
	Version  string
	Verdict  string
	Allowed  bool
	Facts    []pdp.Fact
	Revision string
}

// replayStamp is "reproduced under version X", or why not.
type replayStamp struct {
	Outcome string // reproduced, differs, not_replayable, "" (no archive)
	Version string
	Detail  string
}

// proofStamp is "in the trail, anchored by checkpoint N signed by key K",
// or why not.
type proofStamp struct {
	Anchored   bool
	Checkpoint int    // 1-based, in the order written
	TreeSize   uint64 // records the checkpoint covers
	Key        string // signer name+key hash
	Hashes     int    // the inclusion proof's length
	Problem    string
}

func (c *Console) decision(w http.ResponseWriter, r *http.Request, ses *session) {
	id := r.PathValue("id")
	if err := c.recordRead(r, ses, id, map[string]any{"endpoint": "console.explain"}); err != nil {
		c.fail(w, r, ses, err)
		return
	}
	ex, err := c.deps.Auditor.Explain(r.Context(), id)
	if err != nil {
		c.fail(w, r, ses, err)
		return
	}
	d := ex.Decision
	v := decisionView{Ex: ex, Version: d.PolicyVersion.Hash, Allowed: d.Allowed, Verdict: "DENIED",
		Facts: d.Facts, Revision: d.FactsRevision}
	if d.Allowed {
		v.Verdict = "ALLOWED"
	}
	v.Replay = replayOf(ex)
	v.Proof = c.prove(ex.Record)
	if p := d.Delegation; p != nil {
		v.Chain = c.chainOf(r.Context(), ex.Entry, p)
	}
	if cf := d.Consent; cf != nil && cf.Subject.ID != "" {
		v.Consent = c.consentTimeline(r.Context(), cf, ex.Entry)
	}
	c.render(w, r, http.StatusOK, "decision", ses, v)
}

func replayOf(ex audit.Explanation) replayStamp {
	s := replayStamp{Version: ex.Decision.PolicyVersion.Hash}
	rp := ex.Replay
	switch {
	case rp == nil:
		s.Detail = "the recorded policy version is not in the archive"
	case rp.Outcome == pdp.Reproduced:
		s.Outcome = "reproduced"
	case rp.Outcome == pdp.Differs:
		s.Outcome, s.Detail = "differs", joinOr(rp.Differences, "")
	default:
		s.Outcome, s.Detail = "not_replayable", joinOr(rp.Missing, "")
	}
	return s
}

func joinOr(parts []string, dflt string) string {
	if len(parts) == 0 {
		return dflt
	}
	out := parts[0]
	for _, p := range parts[1:] {
		out += "; " + p
	}
	return out
}

// prove checks that rec is in the tree the latest checkpoint signs, with
// the public verifier key alone (trail.CheckProof).
func (c *Console) prove(rec trail.Record) proofStamp {
	t := c.deps.Trail
	if t == nil || c.deps.VerifierKey == "" {
		return proofStamp{Problem: "this PDP serves no trail proofs"}
	}
	cps := t.Checkpoints()
	if len(cps) == 0 {
		return proofStamp{Problem: "the trail has no checkpoint yet: the record is not anchored"}
	}
	cp := cps[len(cps)-1]
	p, err := t.Prove(rec.Seq, cp)
	switch {
	case errors.Is(err, trail.ErrNotFound):
		return proofStamp{Problem: fmt.Sprintf("record %d comes after the latest checkpoint: not anchored yet (the next checkpoint will cover it)", rec.Seq)}
	case err != nil:
		c.log.Error("console: inclusion proof", "seq", rec.Seq, "error", err)
		return proofStamp{Problem: "no inclusion proof: " + err.Error()}
	}
	if err := trail.CheckProof(c.deps.VerifierKey, cp, rec, p); err != nil {
		return proofStamp{Problem: "the inclusion proof does NOT verify: " + err.Error()}
	}
	return proofStamp{Anchored: true, Checkpoint: len(cps), TreeSize: p.TreeSize, Hashes: len(p.Hashes), Key: keyName(c.deps.VerifierKey)}
}

// keyName names a verifier key as name+hash (its first two fields).
func keyName(verifierKey string) string {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return "(unreadable key)"
	}
	return fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash())
}

// timeline is a consent grant's events on a time axis, with the decision.
type timeline struct {
	Subject  string
	Purpose  string
	Status   string
	Grant    string
	Width    int
	Events   []timelineEvent
	Decision timelineMark
	Problem  string
}

type timelineEvent struct {
	X       int
	Type    string
	When    string
	ID      string
	Grant   string
	Actor   string
	App     string
	Receipt string
	Used    bool // the grant the decision relied on
	Class   string
}

type timelineMark struct {
	X    int
	When string
}

func (c *Console) consentTimeline(ctx context.Context, cf *pdp.ConsentFact, e audit.Entry) *timeline {
	tl := &timeline{Subject: cf.Subject.String(), Purpose: cf.Purpose, Status: cf.Status, Grant: cf.GrantID, Width: 760}
	if c.deps.Consents == nil {
		tl.Problem = "this PDP has no consent ledger"
		return tl
	}
	reader := consent.Reader{Admin: true}
	events, err := c.deps.Consents.HistoryFor(ctx, consent.Ref{Type: cf.Subject.Type, ID: cf.Subject.ID}, reader)
	if err != nil {
		tl.Problem = "the consent ledger could not be read: " + err.Error()
		return tl
	}
	events = slices.DeleteFunc(events, func(ev consent.Event) bool { return ev.Purpose != cf.Purpose })
	if len(events) == 0 {
		tl.Problem = "no consent event for this purpose"
	}
	lo, hi := e.Time, e.Time
	for _, ev := range events {
		lo, hi = minTime(lo, ev.At), maxTime(hi, ev.At)
	}
	scale := axis(lo, hi, 40, tl.Width-90)
	for _, ev := range events {
		te := timelineEvent{X: scale(ev.At), Type: string(ev.Type), When: ev.At.UTC().Format("2006-01-02 15:04:05"), ID: ev.ID,
			Grant: ev.GrantID, Actor: ev.Actor.String(), App: ev.Application, Used: ev.GrantID != "" && ev.GrantID == cf.GrantID,
			Class: "ev-" + string(ev.Type)}
		if rc, err := c.deps.Consents.ReceiptFor(ctx, ev.ID, reader); err == nil {
			te.Receipt = rc
		}
		tl.Events = append(tl.Events, te)
	}
	tl.Decision = timelineMark{X: scale(e.Time), When: e.Time.UTC().Format("2006-01-02 15:04:05")}
	return tl
}
