package revalidation

import (
	"context"
	"encoding/csv"
	"fmt"
	"github.com/ciampdp/pdp/pdp/dormancy"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ciampdp/pdp/pdp/delegation"
)

// ConsentReader names the consents in force of a subject (grant id and
// purpose, "grant-heidi:marketing"); nil leaves them out of reports.
type ConsentReader interface {
	GrantsOf(ctx context.Context, subject Ref) ([]string, error)
}

// ReportOptions choose what a report covers.
type ReportOptions struct {
	// Rules are the active bundle's dormancy rules.
	Rules *dormancy.Rules
	// Now is the report's time (zero: the service's clock).
	Now time.Time
	// From and To bound the revalidations listed (zero: unbounded).
	From, To time.Time
	// Progress, when set, is called every ProgressEvery identities
	// scanned, and once at the end.
	Progress func(scanned, total int)
}

// ProgressEvery is how often a report calls ReportOptions.Progress.
const ProgressEvery = 100_000

// Report is what the bank shows of its dormant population.
type Report struct {
	AsOf       time.Time        `json:"as_of"`
	Thresholds []ThresholdCount `json:"thresholds"`
	// Identities dormant past at least one identity rule, longest idle
	// first, then by name.
	Identities []DormantIdentity `json:"identities"`
	// Delegations in force unused past their basis' rule.
	Delegations   []DormantDelegation `json:"delegations"`
	Revalidations []Revalidation      `json:"revalidations"`
	Scanned       int                 `json:"scanned"`
}

// ThresholdCount is how many identities are dormant past one rule.
type ThresholdCount struct {
	Rule       string `json:"rule"`
	LimitDays  int    `json:"limit_days"`
	Identities int    `json:"identities"`
}

// DormantIdentity is one identity dormant past a rule, and not
// revalidated since its last activity.
type DormantIdentity struct {
	Subject    Ref       `json:"subject"`
	LastActive time.Time `json:"last_active"`
	IdleDays   int       `json:"idle_days"`
	// Rules passed, shortest limit first.
	Rules []string `json:"rules"`
	// DelegationsGiven (as principal) and DelegationsHeld (as agent),
	// those in force.
	DelegationsGiven []string `json:"delegations_given"`
	DelegationsHeld  []string `json:"delegations_held"`
	Consents         []string `json:"consents"`
}

// DormantDelegation is one delegation in force unused past its rule.
type DormantDelegation struct {
	ID        string    `json:"id"`
	Basis     string    `json:"basis"`
	Principal string    `json:"principal"`
	Agent     string    `json:"agent"`
	Rule      string    `json:"rule"`
	LastUsed  time.Time `json:"last_used,omitzero"`
	Since     time.Time `json:"since"`
	IdleDays  int       `json:"idle_days"`
}

// Report scans every identity's activity and every delegation once.
func (s *Service) Report(ctx context.Context, o ReportOptions) (Report, error) {
	now := o.Now
	if now.IsZero() {
		now = s.now()
	}
	now = now.UTC()
	rep := Report{AsOf: now, Thresholds: []ThresholdCount{}, Identities: []DormantIdentity{}, Delegations: []DormantDelegation{}}
	rules := o.Rules
	act, err := s.c.Activity.ActivitySnapshot(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("dormancy report: %w", err)
	}
	var dels []delegation.Delegation
	if s.c.Delegations != nil {
		if dels, err = s.c.Delegations.List(ctx, delegation.Filter{}); err != nil {
			return Report{}, fmt.Errorf("dormancy report: delegations: %w", err)
		}
	}
	given, held := map[Ref][]string{}, map[Ref][]string{}
	for _, d := range dels {
		if d.Status != delegation.StatusActive || !d.ValidUntil.After(now) {
			continue
		}
		p, a := Ref{Type: d.Principal.Type, ID: d.Principal.ID}, Ref{Type: d.Agent.Type, ID: d.Agent.ID}
		given[p] = append(given[p], d.ID)
		held[a] = append(held[a], d.ID)
	}
	thresholds := rules.Thresholds()
	counts := make([]int, len(thresholds))
	total := len(act)
	for ref, at := range act {
		rep.Scanned++
		if o.Progress != nil && rep.Scanned%ProgressEvery == 0 {
			o.Progress(rep.Scanned, total)
		}
		if dormancy.IsRole(ref) || !rules.AppliesTo(ref.Type) {
			continue // a role's activity, or no identity rule applies
		}
		idle := now.Sub(at)
		if len(thresholds) == 0 || idle <= thresholds[0].After {
			continue
		}
		if r, ok := s.Latest(ref.String()); ok && r.At.After(at) {
			continue // revalidated since
		}
		var passed []string
		for i, t := range thresholds {
			if idle > t.After {
				passed = append(passed, t.ID)
				counts[i]++
			}
		}
		rep.Identities = append(rep.Identities, DormantIdentity{Subject: ref, LastActive: at, IdleDays: days(idle), Rules: passed,
			DelegationsGiven: nonNil(given[ref]), DelegationsHeld: nonNil(held[ref]), Consents: []string{}})
	}
	if o.Progress != nil {
		o.Progress(rep.Scanned, total)
	}
	for i, t := range thresholds {
		rep.Thresholds = append(rep.Thresholds, ThresholdCount{Rule: t.ID, LimitDays: days(t.After), Identities: counts[i]})
	}
	slices.SortFunc(rep.Identities, func(a, b DormantIdentity) int {
		if c := a.LastActive.Compare(b.LastActive); c != 0 {
			return c
		}
		if c := strings.Compare(a.Subject.Type, b.Subject.Type); c != 0 {
			return c
		}
		return strings.Compare(a.Subject.ID, b.Subject.ID)
	})
	if cr, ok := s.c.Activity.(ConsentReader); ok {
		for i := range rep.Identities {
			gs, err := cr.GrantsOf(ctx, rep.Identities[i].Subject)
			if err != nil {
				return Report{}, fmt.Errorf("dormancy report: consents of %s: %w", rep.Identities[i].Subject, err)
			}
			rep.Identities[i].Consents = nonNil(gs)
		}
	}
	for _, d := range dels {
		if d.Status != delegation.StatusActive || !d.ValidUntil.After(now) {
			continue
		}
		dr, ok := rules.Delegation(string(d.Basis))
		if !ok {
			continue
		}
		ds := dormancy.DelegationState{ID: d.ID, Since: d.CreatedAt, LastUsed: act[dormancy.AgentRef(d.ID)]}
		if d.AcceptedAt != nil {
			ds.Since = *d.AcceptedAt
		}
		if r, ok := s.Latest(dormancy.DelegationKey(d.ID)); ok {
			ds.Reconfirmation = &r
		}
		idle := now.Sub(ds.LastInUse())
		if idle <= dr.UnusedAfter {
			continue
		}
		rep.Delegations = append(rep.Delegations, DormantDelegation{ID: d.ID, Basis: string(d.Basis), Principal: d.Principal.String(),
			Agent: d.Agent.String(), Rule: dr.ID, LastUsed: ds.LastUsed, Since: ds.Since, IdleDays: days(idle)})
	}
	slices.SortFunc(rep.Delegations, func(a, b DormantDelegation) int { return strings.Compare(a.ID, b.ID) })
	rep.Revalidations = nonNil(s.Revalidations(o.From, o.To))
	return rep, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// WriteCSV writes the report as CSV: one row per dormant identity
// (section "identity"), per dormant delegation ("delegation": subject is
// its principal, detail its basis and agent) and per revalidation
// ("revalidation": rules holds its kind), under one header.
func (r Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	day := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	_ = cw.Write([]string{"section", "id", "subject", "last_activity", "idle_days", "rules", "delegations_given", "delegations_held", "consents", "detail"})
	for _, i := range r.Identities {
		_ = cw.Write([]string{"identity", i.Subject.String(), i.Subject.String(), day(i.LastActive), strconv.Itoa(i.IdleDays),
			strings.Join(i.Rules, " "), strings.Join(i.DelegationsGiven, " "), strings.Join(i.DelegationsHeld, " "), strings.Join(i.Consents, " "), ""})
	}
	for _, d := range r.Delegations {
		last := d.LastUsed
		if last.IsZero() {
			last = d.Since
		}
		_ = cw.Write([]string{"delegation", d.ID, d.Principal, day(last), strconv.Itoa(d.IdleDays), d.Rule, "", "", "", d.Basis + " held by " + d.Agent})
	}
	for _, v := range r.Revalidations {
		detail := v.Source
		if v.Delegation != "" {
			detail = v.Delegation + " " + detail
		}
		_ = cw.Write([]string{"revalidation", v.ID, v.Subject.String(), day(v.At), "", v.Kind, "", "", "", detail + " by " + v.By.Subject.String() + " via " + v.By.Application})
	}
	cw.Flush()
	return cw.Error()
}

func days(d time.Duration) int { return int(d / (24 * time.Hour)) }
