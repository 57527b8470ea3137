// Package reason owns the catalogue of stable reason codes: every code the
// engine, the HTTP API, the sidecar and the gateway give, with its meaning.
//
// Applications switch on these codes, so they are a contract: a code is
// added here (and to the README's "Reason codes" tables, which a test keeps
// equal to Catalogue) before any package gives it, and never renamed.
package reason

// Where says which part of the system gives a code, and so where a client
// meets it.
type Where string

const (
	// Decision: in a deny's context.reasons (the engine, the trail, the
	// consent guard), also as the sidecar and the gateway pass it on.
	Decision Where = "decision"
	// HTTPError: in the "reason" of an error answer (or its message) of
	// the PDP's HTTP API, or the reason of /readyz.
	HTTPError Where = "HTTP error"
	// Sidecar: in the reasons of a deny `pdp sidecar` gives itself, or its
	// error answers.
	Sidecar Where = "sidecar"
	// Gateway: in X-Decision-Reasons of an answer the gateway gives
	// itself, without a PDP decision.
	Gateway Where = "gateway"
)

// Codes of decisions (a deny's context.reasons).
const (
	NotPermitted          = "not_permitted"
	Forbidden             = "forbidden"
	PolicyError           = "policy_error"
	UnknownAction         = "unknown_action"
	UnknownEntityType     = "unknown_entity_type"
	EntityTypeMismatch    = "entity_type_mismatch"
	InvalidInput          = "invalid_input"
	FactsUnavailable      = "facts_unavailable"
	FactsIncomplete       = "facts_incomplete"
	NoRelationship        = "no_relationship"
	DelegationOutOfScope  = "delegation_out_of_scope"
	DelegationExpired     = "delegation_expired"
	DelegationNotYetValid = "delegation_not_yet_valid"
	DelegationNotAccepted = "delegation_not_accepted"
	DelegationRevoked     = "delegation_revoked"
	DelegationSuspended   = "delegation_suspended"
	DelegationInvalid     = "delegation_invalid"
	CurrencyMissing       = "currency_missing"
	InvalidID             = "invalid_id"
	ContextTooLarge       = "context_too_large"
	PurposeNotAllowed     = "purpose_not_allowed"
	ConsentMissing        = "consent_missing"
	ConsentWithdrawn      = "consent_withdrawn"
	ConsentExpired        = "consent_expired"
	ConsentInvalidMinor   = "consent_invalid_minor"
	RevalidationRequired  = "revalidation_required"
	DelegationDormant     = "delegation_dormant"
	TrailUnavailable      = "trail_unavailable"
	// Risk signals (the risk guard): codes the signals registry names.
	AccountCompromised       = "account_compromised"
	AccountDisabled          = "account_disabled"
	SessionRevoked           = "session_revoked"
	CredentialChangeRequired = "credential_change_required"
	AssuranceTooLow          = "assurance_too_low"
	RiskVelocity             = "risk_velocity"
	StepUpFailed             = "step_up_failed"
	ReportNotAllowed         = "report_not_allowed"
)

// Codes of the HTTP API's error answers (besides Forbidden,
// DelegationOutOfScope and TrailUnavailable above): the actor checks and
// the rule codes of the delegation and consent services.
const (
	ActorUnproven        = "actor_unproven"
	ActorKeysUnavailable = "actor_keys_unavailable"
	// ActorReplayUnavailable: single-use actor tokens are on and the
	// token's use cannot be recorded (503, fail closed).
	ActorReplayUnavailable = "actor_replay_unavailable"
	Invalid                = "invalid"
	NotFound               = "not_found"
	InvalidTransition      = "invalid_transition"
	ExceedsParent          = "exceeds_parent"
	ParentInactive         = "parent_inactive"
	UnknownPurpose         = "unknown_purpose"
	NoRule                 = "no_rule"
	NotConsent             = "not_consent"
	ExceedsMaxValidity     = "exceeds_max_validity"
	NoDelegation           = "no_delegation"
	AlreadyEnded           = "already_ended"
)

// Codes the sidecar and the gateway give themselves.
const (
	PDPUnreachable  = "pdp_unreachable"
	RouteNotFound   = "route_not_found"
	InvalidPath     = "invalid_path"
	Unauthenticated = "unauthenticated"
	InvalidToken    = "invalid_token"
	Ambiguous       = "ambiguous_request"
	PDPUnavailable  = "pdp_unavailable"
	KeysUnavailable = "keys_unavailable"
)

// Entry is one row of the catalogue: a code, where it is given, and its
// meaning there (one line, Markdown, as the README shows it). A code given
// in two places has an entry for each.
type Entry struct {
	Code    string
	Where   Where
	Meaning string
}

// Catalogue returns every reason code with its meaning, decisions first,
// in the order the README lists them.
func Catalogue() []Entry {
	out := make([]Entry, 0, len(decisionEntries)+len(otherEntries))
	out = append(out, decisionEntries...)
	return append(out, otherEntries...)
}

// Known reports whether code is in the catalogue for where.
func Known(code string, where Where) bool {
	for _, e := range Catalogue() {
		if e.Code == code && e.Where == where {
			return true
		}
	}
	return false
}
