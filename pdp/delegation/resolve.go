package delegation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Statuses of a Proof.
const (
	ProofActive       = "active"
	ProofNoDelegation = "no_delegation"
	ProofNotAccepted  = "not_accepted"
	ProofExpired      = "expired"
	ProofNotYetValid  = "not_yet_valid"
	ProofRevoked      = "revoked"
	ProofSuspended    = "suspended"
	ProofOutOfScope   = "out_of_scope"
	// ProofCurrencyMissing: the delegation limits payments to one
	// currency and the request names an amount but no currency, so the
	// limit cannot be applied (the relationship store's amount_limit
	// caveat compares numbers only).
	ProofCurrencyMissing = "currency_missing"
)

// proofRank orders the answers when none is active: the most informative
// one wins.
var proofRank = map[string]int{
	ProofActive:          7,
	ProofOutOfScope:      6,
	ProofCurrencyMissing: 6,
	ProofSuspended:       5,
	ProofNotYetValid:     4,
	ProofExpired:         3,
	ProofRevoked:         2,
	ProofNotAccepted:     1,
}

// Query asks whether Actor may act for Principal doing Action on Resource
// at Now (zero: the service's clock), for Amount in Currency when given.
type Query struct {
	Actor, Principal Ref
	Action           string
	Resource         Ref
	Amount           *float64
	Currency         string
	Now              time.Time
}

// Proof is the answer of Resolve.
type Proof struct {
	// Status is one of the Proof* constants.
	Status string `json:"status"`
	// Chain is the chosen delegation's id, then its parent's, up to the
	// root; empty when there is none.
	Chain []string `json:"chain,omitempty"`
	// Considered lists, sorted, the ids of every delegation from Principal
	// to Actor that was examined.
	Considered []string `json:"considered,omitempty"`
	Basis      Basis    `json:"basis,omitempty"`
	// Since is when the chosen delegation came into force: its
	// acceptance, or its creation for one that needs none (the dormancy
	// guard counts an unused delegation's idleness from it).
	Since time.Time `json:"since,omitzero"`
	// Detail says why the chosen delegation does not allow the request
	// ("" when active or none).
	Detail string `json:"detail,omitempty"`
}

// Allowed reports whether the proof lets the actor act.
func (p Proof) Allowed() bool { return p.Status == ProofActive }

// Resolve finds whether a delegation lets q.Actor act for q.Principal: the
// first delegation that allows the request, or else the most informative
// refusal (out_of_scope, suspended, not_yet_valid, expired, revoked,
// not_accepted, in that order), or no_delegation. It reads only the Store
// (the FileStore from memory): one Lineage read.
func (s *Service) Resolve(ctx context.Context, q Query) (Proof, error) {
	ps, err := s.ResolveBatch(ctx, []Query{q})
	if err != nil {
		return Proof{}, err
	}
	return ps[0], nil
}

// ResolveBatch is Resolve for every query, in order, with one read of the
// Store for all of them (Store.Lineage: the candidates of every pair and
// their ancestors), whatever their number: a batch of decisions costs one
// round trip to PostgreSQL.
func (s *Service) ResolveBatch(ctx context.Context, qs []Query) ([]Proof, error) {
	var pairs []Pair
	seen := map[Pair]bool{}
	for _, q := range qs {
		p := Pair{Principal: q.Principal, Agent: q.Actor}
		if q.Actor != q.Principal && !seen[p] {
			seen[p] = true
			pairs = append(pairs, p)
		}
	}
	out := make([]Proof, len(qs))
	if len(pairs) == 0 {
		for i := range out {
			out[i] = Proof{Status: ProofNoDelegation}
		}
		return out, nil
	}
	recs, err := s.store.Lineage(ctx, pairs)
	if err != nil {
		return nil, fmt.Errorf("delegation: resolve: %w", err)
	}
	byID := make(map[string]Delegation, len(recs))
	cands := map[Pair][]Delegation{}
	for _, d := range recs {
		byID[d.ID] = d
		if p := (Pair{Principal: d.Principal, Agent: d.Agent}); seen[p] {
			cands[p] = append(cands[p], d)
		}
	}
	for _, c := range cands {
		sortDelegations(c) // List's order: the first that allows wins
	}
	get := func(_ context.Context, id string) (Delegation, error) {
		if d, ok := byID[id]; ok {
			return d, nil
		}
		return Delegation{}, fmt.Errorf("delegation %s: %w", id, ErrNotFound)
	}
	for i, q := range qs {
		var c []Delegation
		if q.Actor != q.Principal {
			c = cands[Pair{Principal: q.Principal, Agent: q.Actor}]
		}
		p, err := s.resolveAmong(ctx, q, c, get)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// getter reads one record: the Store's Get, or a batch's records.
type getter func(ctx context.Context, id string) (Delegation, error)

// resolveAmong is Resolve on the candidates (the records from q.Principal
// to q.Actor, in List's order), reading their ancestors through get.
func (s *Service) resolveAmong(ctx context.Context, q Query, cands []Delegation, get getter) (Proof, error) {
	now := q.Now
	if now.IsZero() {
		now = s.clock()
	}
	p := Proof{Status: ProofNoDelegation}
	if len(cands) == 0 {
		return p, nil
	}
	p.Considered = make([]string, len(cands))
	for i, d := range cands {
		p.Considered[i] = d.ID
	}
	slices.Sort(p.Considered)
	best := 0
	for _, d := range cands {
		st, chain, detail, err := s.evaluate(ctx, d, q, now, get)
		if err != nil {
			return Proof{}, fmt.Errorf("delegation: resolve: %w", err)
		}
		if r := proofRank[st]; r > best {
			best = r
			p.Status, p.Chain, p.Detail, p.Basis = st, chain, detail, d.Basis
			p.Since = d.CreatedAt
			if d.AcceptedAt != nil {
				p.Since = *d.AcceptedAt
			}
			if st == ProofActive {
				break
			}
		}
	}
	return p, nil
}

// evaluate is the status of one candidate for q: its own end, then its
// ancestors (nearest first), then its own status, window and limits.
func (s *Service) evaluate(ctx context.Context, d Delegation, q Query, now time.Time, get getter) (status string, chain []string, detail string, err error) {
	chain = []string{d.ID}
	if d.Status.ended() {
		return ProofRevoked, chain, fmt.Sprintf("delegation %s is %s", d.ID, d.Status), nil
	}
	anc, err := ancestorsVia(ctx, d, get)
	for _, a := range anc {
		chain = append(chain, a.ID)
	}
	if errors.Is(err, ErrNotFound) {
		return ProofRevoked, chain, fmt.Sprintf("an ancestor of %s is missing", d.ID), nil
	}
	if err != nil {
		return "", nil, "", err
	}
	for _, a := range anc {
		if st := a.Effective(now); st != StatusActive {
			return proofStatus(st), chain, fmt.Sprintf("ancestor %s is %s", a.ID, st), nil
		}
	}
	if st := d.Effective(now); st != StatusActive {
		return proofStatus(st), chain, fmt.Sprintf("delegation %s is %s", d.ID, st), nil
	}
	if !d.covers(q.Action) {
		return ProofOutOfScope, chain, fmt.Sprintf("action %s is not in the scope %v", q.Action, d.Scope), nil
	}
	if len(d.Resources) > 0 && !slices.Contains(d.Resources, q.Resource) {
		return ProofOutOfScope, chain, fmt.Sprintf("resource %s is not among %s", q.Resource, refs(d.Resources)), nil
	}
	if q.Amount != nil && d.Constraints.MaxAmount != nil && *q.Amount > *d.Constraints.MaxAmount {
		return ProofOutOfScope, chain, fmt.Sprintf("amount %s exceeds the limit %s %s", num(*q.Amount),
			num(*d.Constraints.MaxAmount), d.Constraints.Currency), nil
	}
	if q.Amount != nil && d.Constraints.Currency != "" && strings.TrimSpace(q.Currency) == "" {
		return ProofCurrencyMissing, chain, fmt.Sprintf("an amount without a currency: delegation %s allows %s only", d.ID, d.Constraints.Currency), nil
	}
	if q.Currency != "" && d.Constraints.Currency != "" && !strings.EqualFold(q.Currency, d.Constraints.Currency) {
		return ProofOutOfScope, chain, fmt.Sprintf("currency %s is not %s", q.Currency, d.Constraints.Currency), nil
	}
	return ProofActive, chain, "", nil
}

// proofStatus maps an effective Status that is not active to a Proof
// status.
func proofStatus(st Status) string {
	switch st {
	case StatusOffered:
		return ProofNotAccepted
	case StatusRevoked, StatusRenounced:
		return ProofRevoked
	case StatusSuspended:
		return ProofSuspended
	case StatusExpired:
		return ProofExpired
	case StatusNotYetValid:
		return ProofNotYetValid
	}
	return ProofRevoked // unknown: fail closed
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
