package delegation

import (
	"cmp"
	"context"
	"slices"
)

// Filter selects delegations; empty fields match anything.
type Filter struct {
	Principal, Agent *Ref
	Parent           string
}

func (f Filter) matches(d *Delegation) bool {
	return (f.Principal == nil || *f.Principal == d.Principal) &&
		(f.Agent == nil || *f.Agent == d.Agent) &&
		(f.Parent == "" || f.Parent == d.Parent)
}

// Store keeps delegation records. Implementations are safe for concurrent
// use and never share memory with their callers (records go in and out as
// copies).
type Store interface {
	// Create stores a new record; ErrExists if the id is taken.
	Create(ctx context.Context, d Delegation) error
	// Update replaces the record with d.ID if its stored Version is
	// prevVersion (ErrConflict otherwise, ErrNotFound if there is none).
	Update(ctx context.Context, d Delegation, prevVersion int) error
	// Get returns the record; ErrNotFound if there is none.
	Get(ctx context.Context, id string) (Delegation, error)
	// List returns the records the filter matches, sorted by CreatedAt then
	// ID.
	List(ctx context.Context, f Filter) ([]Delegation, error)
	// Lineage returns, in one read, every record from a pair's principal
	// to its agent and every ancestor of those (followed through Parent,
	// a missing one left out), each once, in no particular order: what
	// Service.ResolveBatch needs to answer all the pairs' questions.
	Lineage(ctx context.Context, pairs []Pair) ([]Delegation, error)
	Close() error
}

// Pair is an agent acting for a principal: the key of a Resolve question.
type Pair struct{ Principal, Agent Ref }

// sortDelegations sorts by CreatedAt, then ID.
func sortDelegations(ds []Delegation) {
	slices.SortFunc(ds, func(a, b Delegation) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}
