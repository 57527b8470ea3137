// Package purposes owns the purposes registry of a policy bundle: which
// applications may process for which purpose, and per jurisdiction the
// legal basis, the default without a choice, the longest validity of a
// grant and the age of consent.
package purposes

// Basis is a legal basis of processing (GDPR Art. 6(1)).
type Basis string

const (
	BasisConsent            Basis = "consent"
	BasisContract           Basis = "contract"
	BasisLegalObligation    Basis = "legal_obligation"
	BasisLegitimateInterest Basis = "legitimate_interest"
	BasisVitalInterest      Basis = "vital_interest"
	BasisPublicTask         Basis = "public_task"
)

// Default is what holds when no choice is recorded: opt_in denies, opt_out
// allows until an opt-out (refused or withdrawn) is recorded.
type Default string

const (
	DefaultOptIn  Default = "opt_in"
	DefaultOptOut Default = "opt_out"
)

// Mandate is what a delegation in force lets its agent do for the data
// subject.
type Mandate struct {
	// Statutory: a guardian or legal representative.
	Statutory bool
	// Scope: the delegation's actions ("*": every action).
	Scope []string
}
