// Package dormancy owns what a decision needs to know about dormancy: the
// rules of a policy bundle (schema/dormancy.yaml), the facts the guard
// evaluates (last activity, revalidations, delegation use), the findings a
// decision records, and the revalidation records and request bodies. It
// is light (the engine and policy bundles import it); the stores and the
// service that make revalidations are package revalidation.
package dormancy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// RulesFile is the dormancy rules of a bundle, in its schema folder
// (beside purposes.yaml); a change is a new policy version.
const RulesFile = "dormancy.yaml"

// Effects of an identity rule on an action.
const (
	// EffectRevalidate: deny revalidation_required with the obligation
	// identity_revalidation.
	EffectRevalidate = "revalidate"
	// EffectStepUp: an allow stays an allow, with the obligation
	// step_up_authentication.
	EffectStepUp = "step_up"
)

// Obligations the guard adds.
const (
	ObligationRevalidation = "identity_revalidation"
	ObligationStepUp       = "step_up_authentication"
	ObligationReconfirm    = "delegation_reconfirmation"
)

// ErrRules: the rules file is malformed (wrapped with the details).
var ErrRules = errors.New("dormancy rules")

// IdentityRule applies to an identity inactive for longer than After:
// the actions in Revalidate are denied until it revalidates, those in
// StepUp need a step-up ("*": every action).
type IdentityRule struct {
	ID         string        `json:"id"`
	After      time.Duration `json:"after"`
	Revalidate []string      `json:"revalidate,omitempty"`
	StepUp     []string      `json:"step_up,omitempty"`
}

// Effect is what the rule does to the action ("" when nothing).
func (r IdentityRule) Effect(action string) string {
	switch {
	case slices.Contains(r.Revalidate, action) || slices.Contains(r.Revalidate, "*"):
		return EffectRevalidate
	case slices.Contains(r.StepUp, action) || slices.Contains(r.StepUp, "*"):
		return EffectStepUp
	}
	return ""
}

// DelegationRule: a delegation of the basis not used by its agent for
// longer than UnusedAfter (counted from its acceptance, or its last use,
// or the principal's last re-confirmation) is dormant until the principal
// re-confirms it.
type DelegationRule struct {
	ID          string        `json:"id"`
	Basis       string        `json:"basis"`
	UnusedAfter time.Duration `json:"unused_after"`
}

// Rules are the dormancy rules of a bundle.
type Rules struct {
	Version string
	// SubjectTypes are the principal types (schema names in the request,
	// e.g. "user") identity rules apply to; default ["user"].
	SubjectTypes []string
	// Identities sorted by After, longest first (the strictest applies).
	Identities  []IdentityRule
	Delegations []DelegationRule
	// Signals say which identity provider signals end an identity's
	// dormancy (Rules.Revalidates).
	Signals SignalRule
}

// SignalRule: a CAEP assurance-level-change to one of AssuranceLevels, or
// an event of one of EventTypes, about an identity ends its dormancy.
type SignalRule struct {
	AssuranceLevels []string `json:"assurance_levels,omitempty"`
	EventTypes      []string `json:"event_types,omitempty"`
}

// CAEPAssuranceLevelChange is the CAEP event type of an assurance level
// change (OpenID CAEP 1.0).
const CAEPAssuranceLevelChange = "https://schemas.openid.net/secevent/caep/event-type/assurance-level-change"

// Revalidates reports whether a signal about an identity ends its
// dormancy: an assurance-level-change whose current level is one the
// rules require, or an event type the rules name. The signals receiver
// asks it, then calls revalidation.Service.Revalidate.
func (r *Rules) Revalidates(eventType, currentLevel string) bool {
	if r == nil {
		return false
	}
	if eventType == CAEPAssuranceLevelChange && currentLevel != "" && slices.Contains(r.Signals.AssuranceLevels, currentLevel) {
		return true
	}
	return slices.Contains(r.Signals.EventTypes, eventType)
}

// AppliesTo reports whether identity rules apply to a principal type.
func (r *Rules) AppliesTo(typ string) bool {
	return r != nil && len(r.Identities) > 0 && slices.Contains(r.SubjectTypes, typ)
}

// Identity returns the strictest rule an identity inactive for idle falls
// under that affects the action, and the effect; false when none.
func (r *Rules) Identity(action string, idle time.Duration) (IdentityRule, string, bool) {
	if r == nil {
		return IdentityRule{}, "", false
	}
	for _, ir := range r.Identities {
		if idle <= ir.After {
			continue
		}
		if eff := ir.Effect(action); eff != "" {
			return ir, eff, true
		}
	}
	return IdentityRule{}, "", false
}

// Delegation returns the rule of a delegation basis.
func (r *Rules) Delegation(basis string) (DelegationRule, bool) {
	if r == nil {
		return DelegationRule{}, false
	}
	for _, dr := range r.Delegations {
		if dr.Basis == basis || dr.Basis == "*" {
			return dr, true
		}
	}
	return DelegationRule{}, false
}

// Horizon is the shortest inactivity any rule cares about: an identity or
// delegation active more recently is not dormant (0: no rules).
func (r *Rules) Horizon() time.Duration {
	if r == nil {
		return 0
	}
	var h time.Duration
	for _, ir := range r.Identities {
		if h == 0 || ir.After < h {
			h = ir.After
		}
	}
	for _, dr := range r.Delegations {
		if h == 0 || dr.UnusedAfter < h {
			h = dr.UnusedAfter
		}
	}
	return h
}

// Thresholds are the identity rules' inactivity limits, shortest first.
func (r *Rules) Thresholds() []IdentityRule {
	if r == nil {
		return nil
	}
	out := slices.Clone(r.Identities)
	slices.Reverse(out)
	return out
}

// rulesFile is the YAML shape of RulesFile.
type rulesFile struct {
	Version      string   `yaml:"version"`
	SubjectTypes []string `yaml:"subject_types"`
	Identities   []struct {
		ID         string   `yaml:"id"`
		After      string   `yaml:"after"`
		Revalidate []string `yaml:"revalidate"`
		StepUp     []string `yaml:"step_up"`
	} `yaml:"identities"`
	Delegations []struct {
		ID          string `yaml:"id"`
		Basis       string `yaml:"basis"`
		UnusedAfter string `yaml:"unused_after"`
	} `yaml:"delegations"`
	Signals struct {
		AssuranceLevels []string `yaml:"assurance_levels"`
		EventTypes      []string `yaml:"event_types"`
	} `yaml:"signals"`
}

// ParseRules reads and checks a rules file. Unknown keys, empty or
// duplicate ids, durations that are not positive, an identity rule with
// no action and an action both revalidated and stepped up are errors.
func ParseRules(data []byte) (*Rules, error) {
	var f rulesFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %w", ErrRules, err)
	}
	r := &Rules{Version: f.Version, SubjectTypes: f.SubjectTypes,
		Signals: SignalRule{AssuranceLevels: f.Signals.AssuranceLevels, EventTypes: f.Signals.EventTypes}}
	for _, l := range append(slices.Clone(r.Signals.AssuranceLevels), r.Signals.EventTypes...) {
		if l == "" {
			return nil, fmt.Errorf("%w: signals: an empty assurance level or event type", ErrRules)
		}
	}
	if len(r.SubjectTypes) == 0 {
		r.SubjectTypes = []string{"user"}
	}
	ids := map[string]bool{}
	id := func(kind string, i int, s string) error {
		if s == "" {
			return fmt.Errorf("%w: %s[%d]: id is required", ErrRules, kind, i)
		}
		if ids[s] {
			return fmt.Errorf("%w: %s[%d]: id %q is used twice", ErrRules, kind, i, s)
		}
		ids[s] = true
		return nil
	}
	for i, ir := range f.Identities {
		if err := id("identities", i, ir.ID); err != nil {
			return nil, err
		}
		d, err := ParseDuration(ir.After)
		if err != nil {
			return nil, fmt.Errorf("%w: identities[%d] (%s): after: %w", ErrRules, i, ir.ID, err)
		}
		if len(ir.Revalidate) == 0 && len(ir.StepUp) == 0 {
			return nil, fmt.Errorf("%w: identities[%d] (%s): names no action under revalidate or step_up", ErrRules, i, ir.ID)
		}
		for _, a := range ir.StepUp {
			if slices.Contains(ir.Revalidate, a) {
				return nil, fmt.Errorf("%w: identities[%d] (%s): action %q is both revalidate and step_up", ErrRules, i, ir.ID, a)
			}
		}
		r.Identities = append(r.Identities, IdentityRule{ID: ir.ID, After: d, Revalidate: ir.Revalidate, StepUp: ir.StepUp})
	}
	sort.SliceStable(r.Identities, func(i, j int) bool { return r.Identities[i].After > r.Identities[j].After })
	bases := map[string]bool{}
	for i, dr := range f.Delegations {
		if err := id("delegations", i, dr.ID); err != nil {
			return nil, err
		}
		if dr.Basis == "" {
			return nil, fmt.Errorf("%w: delegations[%d] (%s): basis is required (or \"*\")", ErrRules, i, dr.ID)
		}
		if bases[dr.Basis] {
			return nil, fmt.Errorf("%w: delegations[%d] (%s): basis %q has a rule already", ErrRules, i, dr.ID, dr.Basis)
		}
		bases[dr.Basis] = true
		d, err := ParseDuration(dr.UnusedAfter)
		if err != nil {
			return nil, fmt.Errorf("%w: delegations[%d] (%s): unused_after: %w", ErrRules, i, dr.ID, err)
		}
		r.Delegations = append(r.Delegations, DelegationRule{ID: dr.ID, Basis: dr.Basis, UnusedAfter: d})
	}
	// A specific basis wins over "*".
	sort.SliceStable(r.Delegations, func(i, j int) bool { return r.Delegations[j].Basis == "*" && r.Delegations[i].Basis != "*" })
	return r, nil
}

// ParseDuration reads "730d" (days) or a Go duration ("12h"); it must be
// positive.
func ParseDuration(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("%q: want a number of days (\"730d\") or a Go duration", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q: want a number of days (\"730d\") or a Go duration", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: must be positive", s)
	}
	return d, nil
}
