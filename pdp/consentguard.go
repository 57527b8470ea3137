package pdp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"

	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/purposes"
	"github.com/ciampdp/pdp/pdp/reason"
)

// Consent is enforced by the engine, not only by policy (ARCHITECTURE.md,
// fixed decision 4). When the bundle has a purposes registry
// (schema/purposes.yaml), every request names its purpose in
// context.purpose; a purpose the calling application may not process for is
// denied (purpose_not_allowed), and when the purpose's legal basis in the
// data subject's jurisdiction is consent, the decision cannot be allowed
// without a valid grant — whatever the policies say. The data subject is
// found through the resource type's @data_subject annotation ("self": the
// resource itself; a relation name: the users holding that relation on the
// resource in the relationship store, e.g. an account's owner). An action
// may also declare a `consent` record in its context to let policies refine
// the answer:
//
//	consent: { allowed: Bool, status: String, basis: String, grant: String }
const (
	ContextPurpose = "purpose"
	ContextConsent = "consent"
)

// Reason codes of the consent guard (the others come from the ledger's
// rules: consent_missing, consent_withdrawn, consent_expired,
// consent_invalid_minor, revalidation_required).
const (
	ReasonPurposeNotAllowed = reason.PurposeNotAllowed
	ReasonConsentMissing    = reason.ConsentMissing
)

// ConsentQuery asks whether a decision may process a data subject's data
// for a purpose, for the calling application, at Now.
type ConsentQuery struct {
	Subject      ObjectRef
	Purpose      string
	Application  string
	Jurisdiction string
	BirthDate    *time.Time
	Now          time.Time
}

// ConsentFact is the ledger's answer, as the decision records it: whether
// it may proceed, the status and reason code, the legal basis relied on,
// the grant relied on (or the one that failed) and the ledger position the
// answer reflects.
type ConsentFact struct {
	Subject  ObjectRef `json:"subject"`
	Purpose  string    `json:"purpose"`
	Allowed  bool      `json:"allowed"`
	Status   string    `json:"status"`
	Reason   string    `json:"reason,omitempty"`
	Basis    string    `json:"basis,omitempty"`
	GrantID  string    `json:"grant_id,omitempty"`
	Position int64     `json:"position"`
	Detail   string    `json:"detail,omitempty"`
}

// ConsentSource answers consent checks (the consent ledger), every check
// of a batch at once (one fact per query, in order), and takes note of
// activity (a decision made by a subject shows it is not dormant; marked
// when the decision's Pending is committed, without a dormancy source). An
// error means the ledger could not answer: the engine denies every query
// of the call with facts_unavailable.
type ConsentSource interface {
	CheckConsents(ctx context.Context, qs []ConsentQuery) ([]ConsentFact, error)
	Touch(subject ObjectRef, at time.Time)
}

// consentJob is the consent part of a job: what to ask once the data
// subject is known.
type consentJob struct {
	purpose string
	query   ConsentQuery
	// lookup is the relation whose holders are the data subjects; "" when
	// the subject is known.
	lookup       string
	resource     ObjectRef
	subjectType  string
	needsConsent bool // the purpose has a consent basis somewhere
}

// planConsent prepares the consent check of a request; false with a
// reason when the request must be denied outright.
func planConsent(b *policy.Bundle, reg *purposes.Registry, req Request, in builtInput, now time.Time) (*consentJob, string, error) {
	purpose, _ := req.Context[ContextPurpose].(string)
	if purpose == "" {
		return nil, ReasonPurposeNotAllowed, errors.New("the request names no purpose (context.purpose); this PDP's purposes registry requires one")
	}
	p, ok := reg.Purpose(purpose)
	if !ok {
		return nil, ReasonPurposeNotAllowed, fmt.Errorf("purpose %q is not in the purposes registry", purpose)
	}
	if !p.Allows(req.Application) {
		return nil, ReasonPurposeNotAllowed, fmt.Errorf("application %q may not process for purpose %q", req.Application, purpose)
	}
	cj := &consentJob{purpose: purpose}
	for _, r := range p.Rules {
		if r.Basis == purposes.BasisConsent {
			cj.needsConsent = true
		}
	}
	cj.query = ConsentQuery{Purpose: purpose, Application: req.Application, Now: now}
	resource := ObjectRef{Type: b.ObjectType(in.Resource.Type), ID: string(in.Resource.ID)}
	switch rule, _ := b.DataSubject(in.Resource.Type); rule {
	case "", policy.DataSubjectSelf:
		cj.query.Subject = resource
	default:
		cj.lookup, cj.resource = rule, resource
		cj.subjectType = "user"
		if ut, ok := b.EntityType("user"); ok {
			cj.subjectType = b.ObjectType(ut)
		}
	}
	return cj, "", nil
}

// personFacts reads the data subject's jurisdiction and birth date from
// the bundle's entities, when it holds them.
func personFacts(b *policy.Bundle, subject ObjectRef) (string, *time.Time) {
	et, ok := b.EntityType(subject.Type)
	if !ok {
		return "", nil
	}
	e, ok := b.Entities()[types.NewEntityUID(et, types.String(subject.ID))]
	if !ok {
		return "", nil
	}
	var jur string
	if v, ok := e.Attributes.Get("jurisdiction"); ok {
		if s, ok := v.(types.String); ok {
			jur = string(s)
		}
	}
	var born *time.Time
	if v, ok := e.Attributes.Get("birth_date"); ok {
		if d, ok := v.(types.Datetime); ok {
			t := time.UnixMilli(d.Milliseconds()).UTC()
			born = &t
		}
	}
	return jur, born
}

// subjectConsent finds the data subject of a job and readies its ledger
// question; true when the job needs the ledger's answer (asked for the
// whole batch at once by resolveConsents).
func (e *Engine) subjectConsent(ctx context.Context, b *policy.Bundle, j *job) bool {
	cj := j.consent
	if j.done || cj == nil {
		return false
	}
	if !cj.needsConsent {
		// No consent anywhere for this purpose: the basis is recorded, no
		// ledger round trip.
		// The basis of the data subject's jurisdiction when the subject is
		// at hand (no lookup is spent on it), else the purpose's "*" rule.
		basis := ""
		if p, ok := b.Purposes().Purpose(cj.purpose); ok {
			jur := ""
			if cj.query.Subject.ID != "" {
				jur, _ = personFacts(b, cj.query.Subject)
			}
			if r, ok := p.Rule(jur); ok {
				basis = string(r.Basis)
			}
		}
		j.d.Consent = &ConsentFact{Subject: cj.query.Subject, Purpose: cj.purpose, Allowed: true, Status: "not_required", Basis: basis}
		return false
	}
	if e.consent == nil {
		j.deny(ReasonFactsUnavailable, errors.New("consent ledger unavailable: none is configured"))
		return false
	}
	if cj.lookup != "" {
		lk, ok := e.facts.(FactLookup)
		if !ok {
			j.deny(ReasonFactsUnavailable, fmt.Errorf("the data subject of %s (its %q) cannot be looked up: no relationship store", cj.resource, cj.lookup))
			return false
		}
		ids, err := lk.LookupSubjects(ctx, cj.resource.Type, cj.resource.ID, cj.lookup, cj.subjectType, nil)
		if err != nil {
			j.deny(ReasonFactsUnavailable, fmt.Errorf("data subject of %s unavailable: %w", cj.resource, err))
			return false
		}
		if len(ids) == 0 {
			j.deny(ReasonConsentMissing, fmt.Errorf("%s has no %s who could have consented to %s", cj.resource, cj.lookup, cj.purpose))
			j.d.Consent = &ConsentFact{Purpose: cj.purpose, Status: ReasonConsentMissing, Reason: ReasonConsentMissing}
			return false
		}
		cj.query.Subject = ObjectRef{Type: cj.subjectType, ID: ids[0]}
	}
	cj.query.Jurisdiction, cj.query.BirthDate = personFacts(b, cj.query.Subject)
	return true
}

// consentRecord builds context.consent with the attributes the action
// declares.
func consentRecord(shape resolved.RecordType, f *ConsentFact) types.Record {
	m := types.RecordMap{}
	for k := range shape {
		switch k {
		case "allowed":
			m[k] = types.Boolean(f != nil && f.Allowed)
		case "status":
			s := "not_applicable"
			if f != nil {
				s = f.Status
			}
			m[k] = types.String(s)
		case "basis":
			s := ""
			if f != nil {
				s = f.Basis
			}
			m[k] = types.String(s)
		case "grant":
			s := ""
			if f != nil {
				s = f.GrantID
			}
			m[k] = types.String(s)
		}
	}
	return types.NewRecord(m)
}

// guardConsent applies the consent guard after Cedar: a decision the
// ledger does not allow is a deny with the ledger's reason, whatever the
// policies said.
func guardConsent(d *Decision) {
	f := d.Consent
	if f == nil || f.Allowed {
		return
	}
	reason := f.Reason
	if reason == "" {
		reason = ReasonConsentMissing
	}
	if d.Allowed {
		d.Allowed = false
		d.Reasons = []string{reason}
		d.Obligations = []string{}
	} else if len(d.Reasons) == 1 && (d.Reasons[0] == ReasonNotPermitted || d.Reasons[0] == ReasonNoRelationship) {
		d.Reasons = []string{reason}
	} else {
		d.Reasons = sortedUnique(append(d.Reasons, reason))
	}
	if d.Message == "" {
		d.Message = f.Detail
	}
}
