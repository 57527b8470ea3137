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
	Close() error
}

// sortDelegations sorts by CreatedAt, then ID.
func sortDelegations(ds []Delegation) {
	slices.SortFunc(ds, func(a, b Delegation) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}
