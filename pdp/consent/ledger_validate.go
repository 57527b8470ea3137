package consent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The checks every write makes before anything is written. Their errors
// are *RuleError (see errors.go for the HTTP statuses).

func checkCaller(app string, subject Ref) error {
	if app == "" {
		return invalid("the calling application is required (it comes from the caller's credential)")
	}
	if subject.Type == "" || subject.ID == "" {
		return invalid("subject.type and subject.id are required")
	}
	return nil
}

// checkActor returns the actor (default: the subject), proven for the
// calling application app. A representative needs a delegation in force
// from the subject to them at at.
func (l *Ledger) checkActor(ctx context.Context, app string, subject, actor Ref, delegation string, at time.Time) (Ref, error) {
	if actor == (Ref{}) {
		actor = subject
	}
	if actor.Type == "" || actor.ID == "" {
		return Ref{}, invalid("actor.type and actor.id are required when an actor is given")
	}
	if err := l.proveActor(ctx, app, actor); err != nil {
		return Ref{}, err
	}
	if actor == subject {
		if delegation != "" {
			return Ref{}, invalid("delegation %q given, but the actor is the subject", delegation)
		}
		return actor, nil
	}
	const msg = "a representative needs a delegation in force from %s to %s"
	switch {
	case delegation == "":
		return Ref{}, ruleErr(CodeNoDelegation, msg+": no delegation given", subject, actor)
	case l.dels == nil:
		return Ref{}, ruleErr(CodeNoDelegation, msg+": this ledger accepts no representatives", subject, actor)
	}
	if _, err := l.mandate(ctx, subject, actor, delegation, at); err != nil {
		return Ref{}, err
	}
	return actor, nil
}

// mandate is the delegation in force from subject to the representative
// actor at at, or the rule error saying it is not.
func (l *Ledger) mandate(ctx context.Context, subject, actor Ref, delegation string, at time.Time) (Mandate, error) {
	const msg = "a representative needs a delegation in force from %s to %s"
	m, err := l.dels.Representative(ctx, actor, subject, delegation, at)
	if err != nil {
		if ctx.Err() != nil {
			return Mandate{}, ctx.Err()
		}
		return Mandate{}, ruleErr(CodeNoDelegation, msg+" at %s: delegation %s: %v",
			subject, actor, at.Format(time.RFC3339), delegation, err)
	}
	return m, nil
}

// proveActor asks the ActorProver, when there is one, whether actor is
// who acts through the calling application app. An application acting as
// itself (a controller's revocation) is proven by its credential.
func (l *Ledger) proveActor(ctx context.Context, app string, actor Ref) error {
	if l.actors == nil || actor == (Ref{Type: "application", ID: app}) {
		return nil
	}
	return l.actors.Prove(ctx, app, actor.Type, actor.ID)
}

// withinMandate checks that a representative (actor other than the
// subject) acts within their delegation's scope for purpose p (see
// Purpose.RepresentableBy): 403 with CodeOutOfScope otherwise. actor was
// checked by checkActor.
func (l *Ledger) withinMandate(ctx context.Context, subject, actor Ref, delegation string, at time.Time, p Purpose) error {
	if actor == subject || l.dels == nil {
		return nil
	}
	m, err := l.mandate(ctx, subject, actor, delegation, at)
	if err != nil {
		return err
	}
	if p.RepresentableBy(m) {
		return nil
	}
	need := "a statutory representative (guardian, legal representative) or a delegation of every action (\"*\")"
	if len(p.RepresentativeScope) > 0 {
		need = "a delegation whose scope covers one of " + strings.Join(p.RepresentativeScope, ", ") + " (or \"*\")"
	}
	return ruleErr(CodeOutOfScope, "%s may not act for %s on purpose %q under delegation %s (scope %s): the purposes registry requires %s",
		actor, subject, p.ID, delegation, strings.Join(m.Scope, ", "), need)
}

func purposeFor(reg *Registry, app, id string) (Purpose, error) {
	if id == "" {
		return Purpose{}, invalid("purpose is required")
	}
	p, ok := reg.Purpose(id)
	if !ok {
		return Purpose{}, ruleErr(CodeUnknownPurpose, "unknown purpose %q (purposes registry %s)", id, reg.Version)
	}
	if !p.Allows(app) {
		return Purpose{}, ruleErr(CodeForbidden, "application %q may not process for purpose %q", app, id)
	}
	return p, nil
}

func applicationsFor(p Purpose, asked []string, caller string) ([]string, error) {
	if len(asked) == 0 {
		return []string{caller}, nil
	}
	var out []string
	for _, a := range asked {
		if !p.Allows(a) {
			return nil, invalid("application %q may not process for purpose %q (it may: %s)",
				a, p.ID, strings.Join(p.Applications, ", "))
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// consentRule is the purpose's rule in the jurisdiction, which must rest on
// consent for there to be a choice to record.
func consentRule(p Purpose, jurisdiction string, typ EventType) (Rule, error) {
	if jurisdiction == "" {
		return Rule{}, invalid("jurisdiction is required")
	}
	rule, ok := p.Rule(jurisdiction)
	if !ok {
		return Rule{}, ruleErr(CodeNoRule, "purpose %q has no rule for jurisdiction %q", p.ID, jurisdiction)
	}
	if rule.Basis != BasisConsent {
		verb := "record"
		if typ == EventRefused {
			verb = "refuse"
		}
		return Rule{}, ruleErr(CodeNotConsent, "purpose %q in %s is processed on %s; there is no consent to %s",
			p.ID, jurisdiction, rule.Basis, verb)
	}
	return rule, nil
}

// expiresFor is a grant's expiry: asked (not after at + max_validity), or
// at + max_validity, or prev without a max_validity.
func expiresFor(rule Rule, at time.Time, asked, prev *time.Time) (*time.Time, error) {
	if asked == nil {
		if rule.MaxValidity > 0 {
			t := at.Add(rule.MaxValidity)
			return &t, nil
		}
		if prev == nil {
			return nil, nil
		}
		t := *prev
		return &t, nil
	}
	t := storedTime(*asked)
	if !t.After(at) {
		return nil, invalid("expires %s is not after at %s", t.Format(time.RFC3339), at.Format(time.RFC3339))
	}
	if rule.MaxValidity > 0 && t.After(at.Add(rule.MaxValidity)) {
		return nil, ruleErr(CodeTooLong, "expires %s is after at + max_validity (%s) = %s",
			t.Format(time.RFC3339), durationText(rule.MaxValidity), at.Add(rule.MaxValidity).Format(time.RFC3339))
	}
	return &t, nil
}

func checkNotice(p Purpose, n Notice) error {
	if n.URI == "" || n.Version < 1 {
		return invalid("notice.uri and notice.version are required: consent is given on a privacy notice")
	}
	if n.Version < p.NoticeMinVersion {
		return invalid("notice version %d is older than version %d, the oldest purpose %q accepts",
			n.Version, p.NoticeMinVersion, p.ID)
	}
	return nil
}

// durationText writes a duration as the registry does ("180d"), or as Go
// does.
func durationText(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
