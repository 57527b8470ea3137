package audit

import (
	"fmt"
	"strings"

	"github.com/cedar-policy/cedar-go"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// PolicyRef is a determining policy with where its text was.
type PolicyRef struct {
	ID     string `json:"id"`
	Effect string `json:"effect,omitempty"` // permit or forbid
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Text   string `json:"text,omitempty"`
}

// Explanation is a decision record made readable: the summary, the
// determining policies with their text (from the archived version), and
// the explanation in words.
type Explanation struct {
	Seq      uint64        `json:"seq"`
	Entry    Entry         `json:"summary"`
	Instance string        `json:"instance,omitempty"`
	Build    string        `json:"build,omitempty"`
	Policies []PolicyRef   `json:"determining_policies"`
	Decision pdp.Decision  `json:"decision"`
	Request  pdp.Request   `json:"request"`
	Replay   *pdp.Replayed `json:"replay,omitempty"`
	Words    []string      `json:"explanation"`
	Record   trail.Record  `json:"-"`
}

// Explain turns a decision record into an explanation. With the archive
// (nil allowed) it quotes the determining policies and replays the
// decision under its version, so the explanation says whether the record
// still reproduces.
//
// reveal (nil: RevealWith(nil)) opens redacted values; a replay that needs
// a value left hidden says so instead of guessing.
func Explain(rec trail.Record, archive Bundles, reveal Revealer) (Explanation, error) {
	if rec.Kind != recorder.KindDecision || rec.Pruned {
		return Explanation{}, fmt.Errorf("audit: record %d is a %q record%s, not a decision", rec.Seq, rec.Kind, map[bool]string{true: " (pruned)"}[rec.Pruned])
	}
	if reveal == nil {
		reveal = RevealWith(nil)
	}
	body, hidden, err := reveal(rec.Body)
	if err != nil {
		return Explanation{}, err
	}
	db, err := DecodeDecision(body)
	if err != nil {
		return Explanation{}, err
	}
	db.Request.Application = db.Decision.Application
	d := db.Decision
	ex := Explanation{Seq: rec.Seq, Entry: entryOf(rec.Seq, db), Instance: db.Instance, Build: db.Build,
		Decision: d, Request: db.Request, Record: rec, Policies: []PolicyRef{}}
	if archive != nil {
		if b, err := archive.Get(d.PolicyVersion.Hash); err == nil {
			for _, id := range d.Policies {
				ref := PolicyRef{ID: id}
				if p, ok := b.Policy(cedar.PolicyID(id)); ok {
					ref.File, ref.Line = p.File, p.Line
					ref.Effect = "permit"
					if p.Cedar.Effect() == cedar.Forbid {
						ref.Effect = "forbid"
					}
					ref.Text = string(p.Cedar.MarshalCedar())
				}
				ex.Policies = append(ex.Policies, ref)
			}
			r := pdp.Replayed{Outcome: pdp.NotReplayable, Missing: trail.NotReplayable(hidden)}
			if len(r.Missing) == 0 {
				r = pdp.NewReplayer().Replay(b, db.Request, d, pdp.ReplayOptions{RequestRedacted: requestHidden(hidden)})
			}
			ex.Replay = &r
		} else {
			for _, id := range d.Policies {
				ex.Policies = append(ex.Policies, PolicyRef{ID: id})
			}
		}
	}
	ex.Words = words(ex)
	return ex, nil
}

// Text is the explanation as lines of text.
// Each line is made terminal-safe (Printable): recorded values are the
// callers'.
func (ex Explanation) Text() string {
	var b strings.Builder
	for _, w := range ex.Words {
		b.WriteString(Printable(w))
		b.WriteByte('\n')
	}
	return b.String()
}

func words(ex Explanation) []string {
	d, e := ex.Decision, ex.Entry
	var w []string
	add := func(format string, args ...any) { w = append(w, fmt.Sprintf(format, args...)) }
	verdict := "DENIED"
	if d.Allowed {
		verdict = "ALLOWED"
	}
	add("Decision %s (trail record %d): %s.", d.ID, ex.Seq, verdict)
	who := "an unauthenticated caller (authentication off)"
	if d.Application != "" {
		who = "application " + d.Application
	}
	add("Asked at %s by %s; answered by PDP instance %s (build %s) in %s.",
		d.Time.UTC().Format("2006-01-02 15:04:05.000 MST"), who, orDash(ex.Instance), orDash(ex.Build), d.Duration)
	line := fmt.Sprintf("Question: may %s %s %s", e.Subject, e.Action, e.Resource)
	if e.OnBehalfOf != "" {
		line += ", acting on behalf of " + e.OnBehalfOf
	}
	if e.Purpose != "" {
		line += ", for the purpose " + e.Purpose
	}
	add("%s?", line)
	switch {
	case len(ex.Policies) > 0 && d.Allowed:
		add("Permitted by %s.", policyList(ex.Policies))
	case len(ex.Policies) > 0 && allPermits(ex.Policies):
		add("Permitted by %s, but the engine denied it: the checks below (consent, delegation, trail) overrule the policies.", policyList(ex.Policies))
	case len(ex.Policies) > 0:
		add("Policies that decided: %s.", policyList(ex.Policies))
	case d.Allowed:
		add("Permitted (no determining policy recorded).")
	default:
		add("No policy permitted the request.")
	}
	if len(d.Reasons) > 0 {
		add("Reason codes: %s.", strings.Join(d.Reasons, ", "))
	}
	if d.Message != "" {
		add("Engine message: %s", d.Message)
	}
	if len(d.Obligations) > 0 {
		add("Obligations on the caller: %s.", strings.Join(d.Obligations, ", "))
	}
	for _, er := range d.Errors {
		add("Policy %s failed to evaluate and was skipped: %s", er.PolicyID, er.Message)
	}
	if len(d.Facts) > 0 {
		add("Relationship facts read from SpiceDB at revision %s:", orDash(d.FactsRevision))
		for _, f := range d.Facts {
			state := "no"
			switch {
			case f.Has:
				state = "yes"
			case f.Conditional:
				state = "only with caveat context the request lacked (" + strings.Join(f.MissingContext, ", ") + ")"
			}
			add("  - %s:%s has %s for %s:%s? %s", f.ResourceType, f.ResourceID, f.Permission, f.SubjectType, f.SubjectID, state)
		}
	}
	if p := d.Delegation; p != nil {
		switch {
		case len(p.Chain) > 0:
			add("Delegation: %s for %s via %s (basis %s, status %s).", e.Subject, p.OnBehalfOf, strings.Join(p.Chain, " → "), orDash(p.Basis), p.Status)
		default:
			add("Delegation: status %s for acting on behalf of %s (records considered: %s).", p.Status, p.OnBehalfOf, orDash(strings.Join(p.Considered, ", ")))
		}
	}
	if c := d.Consent; c != nil {
		line := fmt.Sprintf("Consent: purpose %s, legal basis %s, status %s", c.Purpose, orDash(c.Basis), c.Status)
		if c.Subject.ID != "" {
			line += ", data subject " + c.Subject.String()
		}
		if c.GrantID != "" {
			line += ", grant " + c.GrantID
		}
		if c.Position > 0 {
			line += fmt.Sprintf(", ledger position %d", c.Position)
		}
		add("%s.", line)
	}
	for _, f := range d.Dormancy {
		add("%s", dormancyLine(f))
	}
	for _, f := range d.Signals {
		add("Risk signal: %s.", pdp.SignalWords(f))
	}
	add("Policy version %s%s.", d.PolicyVersion.Hash, map[bool]string{true: " (Git commit " + d.PolicyVersion.Commit + ")"}[d.PolicyVersion.Commit != ""])
	if r := ex.Replay; r != nil {
		switch r.Outcome {
		case pdp.Reproduced:
			add("Replayed from the recorded input under the archived version: reproduced.")
		case pdp.Differs:
			add("Replayed from the recorded input under the archived version: DIFFERS (%s).", strings.Join(r.Differences, "; "))
		default:
			add("Replay not possible: %s.", strings.Join(r.Missing, "; "))
		}
	}
	return w
}

func policyList(ps []PolicyRef) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%q", p.ID)
		if p.File != "" {
			parts[i] += fmt.Sprintf(" (%s %s:%d)", p.Effect, p.File, p.Line)
		}
	}
	return strings.Join(parts, ", ")
}

func allPermits(ps []PolicyRef) bool {
	for _, p := range ps {
		if p.Effect != "permit" {
			return false
		}
	}
	return true
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
