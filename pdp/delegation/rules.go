package delegation

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Names end up in SpiceDB relationships, so they follow its grammar: object
// types, object ids, and actions that become relations delegate_<action>.
var (
	typeRE     = regexp.MustCompile(`^[a-z][a-z0-9_]{1,62}[a-z0-9]$`)
	idRE       = regexp.MustCompile(`^[a-zA-Z0-9/_|\-=+]+$`)
	actionRE   = regexp.MustCompile(`^[a-z]([a-z0-9_]{0,53}[a-z0-9])?$`)
	currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)
)

// validID reports whether s can be a SpiceDB object id.
func validID(s string) bool { return len(s) <= 1024 && idRE.MatchString(s) }

// AnyAction is the scope entry for every action; it is projected as the
// relation delegate_any, so "any" is not an action name.
const AnyAction = "*"

func checkRef(field string, r Ref) error {
	if r.Type == "" || r.ID == "" {
		return invalid("%s: type and id are required", field)
	}
	if !typeRE.MatchString(r.Type) {
		return invalid("%s: type %q is not a lowercase object type (a-z, 0-9, _; 3 to 64 characters)", field, r.Type)
	}
	if !validID(r.ID) {
		return invalid("%s: id %q has characters other than a-z A-Z 0-9 / _ | - = +", field, r.ID)
	}
	return nil
}

// normalize fills defaults and removes duplicates; the caller validates.
func (d *Delegation) normalize() {
	d.Scope = dedupe(d.Scope)
	d.Resources = dedupe(d.Resources)
	d.Constraints.Currency = strings.ToUpper(strings.TrimSpace(d.Constraints.Currency))
	d.ValidFrom, d.ValidUntil = d.ValidFrom.UTC(), d.ValidUntil.UTC()
}

func dedupe[T comparable](in []T) []T {
	if len(in) == 0 {
		return nil
	}
	out := make([]T, 0, len(in))
	for _, v := range in {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// validateShape checks what a record must satisfy on its own, whatever its
// history: parties, basis, source, scope, resources, window, depth,
// constraints.
func (d *Delegation) validateShape() error {
	if err := checkRef("principal", d.Principal); err != nil {
		return err
	}
	if err := checkRef("agent", d.Agent); err != nil {
		return err
	}
	if d.Agent == d.Principal {
		return invalid("agent %s is the principal: nobody delegates to themself", d.Agent)
	}
	if !d.Basis.valid() {
		return invalid("basis %q is not one of power_of_attorney, statutory_guardian, legal_representative, sub_delegation", d.Basis)
	}
	if !d.Source.valid() {
		return invalid("source %q is not one of register, self_declared", d.Source)
	}
	if (d.Basis == BasisSubDelegation) != (d.Parent != "") {
		if d.Parent == "" {
			return invalid("basis sub_delegation needs a parent delegation")
		}
		return invalid("a parent (%s) is only allowed with basis sub_delegation, not %s", d.Parent, d.Basis)
	}
	if d.Parent != "" && !validID(d.Parent) {
		return invalid("parent: %q is not a delegation id", d.Parent)
	}
	if len(d.Scope) == 0 {
		return invalid("scope: at least one action (or \"*\") is required")
	}
	for _, a := range d.Scope {
		if a == AnyAction {
			continue
		}
		if a == "any" {
			return invalid(`scope: "any" is reserved (write "*" for every action)`)
		}
		if !actionRE.MatchString(a) {
			return invalid("scope: action %q is not a lowercase name (a-z, 0-9, _; at most 55 characters)", a)
		}
	}
	for i, r := range d.Resources {
		if err := checkRef(fmt.Sprintf("resources[%d]", i), r); err != nil {
			return err
		}
	}
	if d.ValidUntil.IsZero() {
		return invalid("valid_until is required")
	}
	if !d.ValidUntil.After(d.ValidFrom) {
		return invalid("valid_until %s is not after valid_from %s", stamp(d.ValidUntil), stamp(d.ValidFrom))
	}
	if d.MaxDepth < 0 {
		return invalid("max_depth %d is negative", d.MaxDepth)
	}
	if m := d.Constraints.MaxAmount; m != nil && (math.IsNaN(*m) || math.IsInf(*m, 0) || *m < 0) {
		return invalid("constraints.max_amount %v is not a number >= 0", *m)
	}
	if c := d.Constraints.Currency; c != "" && !currencyRE.MatchString(c) {
		return invalid("constraints.currency %q is not a three-letter ISO 4217 code", c)
	}
	return nil
}

// validateRecord checks an imported record: its shape, id, status and
// history.
func (d *Delegation) validateRecord() error {
	if !validID(d.ID) {
		return invalid("id %q has characters other than a-z A-Z 0-9 / _ | - = +", d.ID)
	}
	if err := d.validateShape(); err != nil {
		return fmt.Errorf("delegation %s: %w", d.ID, err)
	}
	if !d.Status.stored() {
		return invalid("delegation %s: status %q is not one of offered, active, suspended, revoked, renounced", d.ID, d.Status)
	}
	for i, e := range d.History {
		if e.Seq != i+1 {
			return invalid("delegation %s: history[%d] has seq %d, want %d", d.ID, i, e.Seq, i+1)
		}
	}
	if n := len(d.History); n > 0 && d.History[n-1].Status != d.Status {
		return invalid("delegation %s: status %s differs from its last event's %s", d.ID, d.Status, d.History[n-1].Status)
	}
	return nil
}

// checkWithinParent checks that a sub-delegation grants no more than its
// parent p.
func checkWithinParent(d *Delegation, p Delegation) error {
	exceeds := func(format string, args ...any) error {
		return ruleErr(CodeExceedsParent, format, args...)
	}
	if p.MaxDepth < 1 {
		return exceeds("parent %s may not be sub-delegated (its max_depth is 0)", p.ID)
	}
	if d.MaxDepth > p.MaxDepth-1 {
		return exceeds("sub-delegation max_depth %d exceeds %d, one less than its parent %s's max_depth %d",
			d.MaxDepth, p.MaxDepth-1, p.ID, p.MaxDepth)
	}
	if d.Principal != p.Principal {
		return invalid("sub-delegation principal %s differs from its parent %s's principal %s", d.Principal, p.ID, p.Principal)
	}
	if d.Agent == p.Agent {
		return invalid("sub-delegation agent %s is already the agent of its parent %s", d.Agent, p.ID)
	}
	if !slices.Contains(p.Scope, AnyAction) {
		var extra []string
		for _, a := range d.Scope {
			if !slices.Contains(p.Scope, a) {
				extra = append(extra, a)
			}
		}
		if len(extra) > 0 {
			return exceeds("sub-delegation scope %v exceeds its parent %s scope %v", extra, p.ID, p.Scope)
		}
	}
	if len(p.Resources) > 0 {
		if len(d.Resources) == 0 {
			return exceeds("sub-delegation covers every resource, but its parent %s only %s", p.ID, refs(p.Resources))
		}
		var extra []Ref
		for _, r := range d.Resources {
			if !slices.Contains(p.Resources, r) {
				extra = append(extra, r)
			}
		}
		if len(extra) > 0 {
			return exceeds("sub-delegation resources %s exceed its parent %s resources %s", refs(extra), p.ID, refs(p.Resources))
		}
	}
	if pm := p.Constraints.MaxAmount; pm != nil {
		dm := d.Constraints.MaxAmount
		if dm == nil {
			return exceeds("sub-delegation has no max_amount, but its parent %s is limited to %v %s", p.ID, *pm, p.Constraints.Currency)
		}
		if *dm > *pm {
			return exceeds("sub-delegation max_amount %v exceeds its parent %s max_amount %v", *dm, p.ID, *pm)
		}
	}
	if pc := p.Constraints.Currency; pc != "" && d.Constraints.Currency != pc {
		got := d.Constraints.Currency
		if got == "" {
			got = "any currency"
		}
		return exceeds("sub-delegation currency %s differs from its parent %s currency %s", got, p.ID, pc)
	}
	if d.ValidFrom.Before(p.ValidFrom) || d.ValidUntil.After(p.ValidUntil) {
		return exceeds("sub-delegation window [%s, %s) is not within its parent %s window [%s, %s)",
			stamp(d.ValidFrom), stamp(d.ValidUntil), p.ID, stamp(p.ValidFrom), stamp(p.ValidUntil))
	}
	return nil
}

func refs(rs []Ref) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
