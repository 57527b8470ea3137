package delegation

import (
	"context"
	"fmt"
	"strings"
)

// Reader is who reads delegation records: the calling application (from
// its credential), and whether it has the whole view.
//
// Who sees a delegation (Service.Sees):
//   - an application with the whole view: Whole (the caller says so, for
//     example the local caller with authentication off), or one of
//     Config.ReaderApplications (auditors, back office);
//   - an application that took part in it: it offered it or made any
//     change of its history (its name is the application of an event, or
//     of CreatedBy) — not a revocation the PDP made because an ancestor
//     ended (Event.Cascade): ending a parent does not make its
//     application a party to the sub-delegations;
//   - for a register-sourced delegation (a guardianship from the civil
//     register, a legal representative from the commercial register): the
//     register applications (Config.RegisterApplications), which speak for
//     the source and alone may change the statutory ones. No other
//     application sees it, although its agent may act through one: the
//     decisions read the records themselves and need no read of the
//     application.
//
// Visibility does not pass along a chain: seeing a delegation shows its
// record (the parent's id among its fields), not its parent's nor its
// sub-delegations' records, which are seen or not by the same rule.
// A delegation the reader may not see is not found, exactly as one that
// does not exist, and lists leave it out.
type Reader struct {
	Application string
	Whole       bool
}

// Sees reports whether r may read d (see Reader).
func (s *Service) Sees(r Reader, d Delegation) bool {
	if r.Whole || s.readers[r.Application] {
		return true
	}
	if r.Application == "" {
		return false
	}
	if d.CreatedBy.Application == r.Application {
		return true
	}
	for _, e := range d.History {
		if e.By.Application == r.Application && !cascaded(d, e) {
			return true
		}
	}
	return d.Source == SourceRegister && s.registers[r.Application]
}

// cascaded reports whether e is a revocation the cascade wrote, also in
// records stored before the Cascade marker: one by the reconcile actor,
// or one whose reason is exactly what the cascade writes ("parent ID
// STATUS" naming d's parent, or "ancestor ID STATUS").
func cascaded(d Delegation, e Event) bool {
	if e.Cascade {
		return true
	}
	if e.Type != EventRevoked {
		return false
	}
	if e.By == reconcileActor {
		return true
	}
	f := strings.Split(e.Reason, " ")
	if len(f) != 3 || f[1] == "" {
		return false
	}
	switch Status(f[2]) {
	case StatusRevoked, StatusRenounced, StatusExpired, StatusSuspended:
	default:
		return false
	}
	return d.Parent != "" && ((f[0] == "parent" && f[1] == d.Parent) || f[0] == "ancestor")
}

// GetFor is Get as r may see it: a record r may not see is ErrNotFound,
// with the very error of a record that does not exist.
func (s *Service) GetFor(ctx context.Context, id string, r Reader) (Delegation, error) {
	d, err := s.store.Get(ctx, id)
	if err != nil {
		return Delegation{}, err
	}
	if !s.Sees(r, d) {
		return Delegation{}, notFound(id)
	}
	return d, nil
}

// ListFor is List as r may see it: the records r may not see are left out.
func (s *Service) ListFor(ctx context.Context, f Filter, r Reader) ([]Delegation, error) {
	all, err := s.store.List(ctx, f)
	if err != nil {
		return nil, err
	}
	var out []Delegation
	for _, d := range all {
		if s.Sees(r, d) {
			out = append(out, d)
		}
	}
	return out, nil
}

// notFound is the error of a store's Get for an id it does not hold.
func notFound(id string) error { return fmt.Errorf("delegation %s: %w", id, ErrNotFound) }

// Hides reports whether a change through by (or its refusal) must answer
// about d exactly as about an id that does not exist: by's application
// may not read d (Sees) and by's actor takes no part in it — is neither
// its principal nor its agent nor, when parent is not nil, the agent of
// its parent. An actor who takes part learns what its own refusal says
// (with auth.actor_tokens that actor is proven; without, the application
// is trusted to name its users, as it is for the change itself), so that
// ids cannot be probed through changes either.
func (s *Service) Hides(by Actor, d Delegation, parent *Delegation) bool {
	if s.Sees(Reader{Application: by.Application}, d) {
		return false
	}
	takesPart := by.Subject == d.Principal || by.Subject == d.Agent || (parent != nil && by.Subject == parent.Agent)
	return !takesPart
}

// mayChooseID reports whether an application may choose the id of an
// offer: only one that may learn whether any id is taken — one with the
// whole view (Config.ReaderApplications) or a register application
// (Config.RegisterApplications, which records the register's own
// numbers). Any other gets an id the Service makes, so that an offer
// cannot probe ids either (a chosen id that is taken is refused 409).
func (s *Service) mayChooseID(app string) bool { return s.readers[app] || s.registers[app] }
