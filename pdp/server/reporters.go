package server

import (
	"log/slog"
	"slices"

	"github.com/ciampdp/pdp/pdp/policy"
)

// unknownReporters lists the reporters of b's failed step-up rules that
// are not applications of keys (no API key names them): their reports
// would be refused, and a rule listing only such reporters counts
// nothing. With no keys (authentication off) no report counts at all.
func unknownReporters(b *policy.Bundle, keys []APIKey) []string {
	if b == nil || b.Signals() == nil {
		return nil
	}
	var out []string
	for _, r := range b.Signals().StepUps {
		for _, app := range r.Reporters {
			known := slices.ContainsFunc(keys, func(k APIKey) bool { return k.Application == app })
			if !known && !slices.Contains(out, app) {
				out = append(out, app)
			}
		}
	}
	return out
}

// warnUnknownReporters logs the reporters no API key names, at start and
// for each new policy version: a misspelt reporter silently disables its
// rule.
func warnUnknownReporters(b *policy.Bundle, keys []APIKey, log *slog.Logger) {
	if apps := unknownReporters(b, keys); len(apps) > 0 {
		log.Warn("failed step-up rules name reporters no API key is for: their reports will be refused (report_not_allowed), and such a rule counts nothing",
			"reporters", apps, "policy_version", b.Version())
	}
}
