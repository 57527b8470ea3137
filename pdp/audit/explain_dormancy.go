package audit

import (
	"fmt"

	"github.com/ciampdp/pdp/pdp/dormancy"
)

// dormancyLine says a dormancy finding in words: the rule, the last
// activity, and what ended the dormancy or what it did.
func dormancyLine(f dormancy.Finding) string {
	last := "no recorded use"
	if !f.LastActivity.IsZero() {
		last = "last activity " + f.LastActivity.UTC().Format("2006-01-02 15:04:05Z")
	}
	what := fmt.Sprintf("%s (%s, %d days idle)", f.Subject, last, f.IdleDays)
	if f.Kind == dormancy.KindDelegation {
		what = fmt.Sprintf("delegation %s (%s, %d days unused)", f.Delegation, last, f.IdleDays)
	}
	head := fmt.Sprintf("Dormancy: %s is past rule %s (%d days)", what, f.Rule, f.LimitDays)
	switch f.Effect {
	case dormancy.EffectRevalidated:
		r := f.Revalidation
		return fmt.Sprintf("%s, but revalidation %s at %s (%s, by %s) ended it.", head, r.ID, r.At.UTC().Format("2006-01-02 15:04:05Z"), r.Source, r.By)
	case dormancy.EffectStepUp:
		return head + ": allowed only with " + f.Obligation + "."
	default:
		return fmt.Sprintf("%s: denied %s until %s.", head, f.Reason, map[bool]string{true: "its principal re-confirms it", false: "the identity revalidates"}[f.Kind == dormancy.KindDelegation])
	}
}
