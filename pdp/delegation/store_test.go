package delegation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// record is a stored delegation as the Service would make it.
func record(id string, principal, agent Ref, created time.Time) Delegation {
	d := Delegation{
		ID: id, Principal: principal, Agent: agent, Basis: BasisPowerOfAttorney, Source: SourceSelfDeclared,
		Scope: []string{"view_statements"}, ValidFrom: date(2026, 1, 1), ValidUntil: date(2027, 1, 1),
		CreatedBy: as(principal), CreatedAt: created, Version: 1,
		Constraints: Constraints{MaxAmount: amount(100), Currency: "EUR"},
	}
	d.addEvent(EventOffered, created, as(principal), "", StatusOffered)
	return d
}

func TestStoreCreateGet(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		ctx := context.Background()
		d := record("dlg-a"+sfx, Ref{"user", "alice" + sfx}, Ref{"user", "bob" + sfx}, today)
		if err := st.Create(ctx, d); err != nil {
			t.Fatalf("Create: %v", err)
		}
		got, err := st.Get(ctx, d.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if jsonOf(t, got) != jsonOf(t, d) {
			t.Errorf("Get = %s\nwant %s", jsonOf(t, got), jsonOf(t, d))
		}
		if err := st.Create(ctx, d); !errors.Is(err, ErrExists) || !errors.Is(err, ErrConflict) {
			t.Errorf("Create twice = %v, want ErrExists (matching ErrConflict)", err)
		}
		if _, err := st.Get(ctx, "dlg-missing"+sfx); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(missing) = %v, want ErrNotFound", err)
		}
	})
}

func TestStoreUpdateVersions(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		ctx := context.Background()
		d := record("dlg-u"+sfx, Ref{"user", "alice" + sfx}, Ref{"user", "bob" + sfx}, today)
		if err := st.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		next := d.Clone()
		next.addEvent(EventAccepted, today.Add(time.Hour), as(d.Agent), "", StatusActive)
		next.Version = 2
		tests := []struct {
			name string
			d    Delegation
			prev int
			want error
		}{
			{"stale version", next, 7, ErrConflict},
			{"missing", func() Delegation { m := next.Clone(); m.ID = "dlg-nope" + sfx; return m }(), 1, ErrNotFound},
			{"ok", next, 1, nil},
			{"again with the old version", next, 1, ErrConflict},
		}
		for _, tt := range tests {
			if err := st.Update(ctx, tt.d, tt.prev); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("%s: Update = %v, want %v", tt.name, err, tt.want)
			}
		}
		got, err := st.Get(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != 2 || got.Status != StatusActive || len(got.History) != 2 {
			t.Errorf("after update: version %d status %s history %d", got.Version, got.Status, len(got.History))
		}
	})
}

func TestStoreList(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		ctx := context.Background()
		alice, bob, carol := Ref{"user", "alice" + sfx}, Ref{"user", "bob" + sfx}, Ref{"user", "carol" + sfx}
		acme := Ref{"organisation", "acme" + sfx}
		// Created out of order; two with the same CreatedAt sort by id.
		recs := []Delegation{
			record("dlg-3"+sfx, alice, bob, today.Add(2*time.Second)),
			record("dlg-2"+sfx, alice, carol, today.Add(time.Second)),
			record("dlg-1b"+sfx, acme, bob, today),
			record("dlg-1a"+sfx, alice, bob, today),
		}
		child := record("dlg-4"+sfx, acme, carol, today.Add(3*time.Second))
		child.Basis, child.Parent = BasisSubDelegation, "dlg-1b"+sfx
		recs = append(recs, child)
		for _, d := range recs {
			if err := st.Create(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(ds []Delegation) string {
			var out []string
			for _, d := range ds {
				if strings.HasSuffix(d.ID, sfx) { // the shared database has others'
					out = append(out, strings.TrimSuffix(d.ID, sfx))
				}
			}
			return strings.Join(out, " ")
		}
		tests := []struct {
			name string
			f    Filter
			want string
		}{
			{"all", Filter{}, "dlg-1a dlg-1b dlg-2 dlg-3 dlg-4"},
			{"principal", Filter{Principal: &alice}, "dlg-1a dlg-2 dlg-3"},
			{"agent", Filter{Agent: &bob}, "dlg-1a dlg-1b dlg-3"},
			{"principal and agent", Filter{Principal: &alice, Agent: &bob}, "dlg-1a dlg-3"},
			{"parent", Filter{Parent: "dlg-1b" + sfx}, "dlg-4"},
			{"parent and agent", Filter{Parent: "dlg-1b" + sfx, Agent: &bob}, ""},
			{"nobody", Filter{Agent: &Ref{"user", "nobody" + sfx}}, ""},
		}
		for _, tt := range tests {
			got, err := st.List(ctx, tt.f)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if ids(got) != tt.want {
				t.Errorf("%s: List = %q, want %q", tt.name, ids(got), tt.want)
			}
		}
	})
}

// TestStoreCopies: what goes in and comes out is never shared.
func TestStoreCopies(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		ctx := context.Background()
		d := record("dlg-c"+sfx, Ref{"user", "alice" + sfx}, Ref{"user", "bob" + sfx}, today)
		if err := st.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		d.Scope[0], *d.Constraints.MaxAmount, d.History[0].Reason = "changed", 1, "changed"
		got, _ := st.Get(ctx, d.ID)
		got.Scope[0], *got.Constraints.MaxAmount = "changed", 1
		again, _ := st.Get(ctx, d.ID)
		if again.Scope[0] != "view_statements" || *again.Constraints.MaxAmount != 100 || again.History[0].Reason != "" {
			t.Errorf("stored record changed through a caller's copy: %s", jsonOf(t, again))
		}
	})
}

// TestStoreConcurrentUpdates: of writers racing on one version, exactly
// one wins; the rest get ErrConflict.
func TestStoreConcurrentUpdates(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		ctx := context.Background()
		d := record("dlg-race"+sfx, Ref{"user", "alice" + sfx}, Ref{"user", "bob" + sfx}, today)
		if err := st.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		const writers = 8
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			wins      int
			conflicts int
		)
		for w := range writers {
			wg.Go(func() {
				n := d.Clone()
				n.addEvent(EventRevoked, today, as(d.Principal), fmt.Sprintf("writer %d", w), StatusRevoked)
				n.Version = 2
				err := st.Update(ctx, n, 1)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, ErrConflict):
					conflicts++
				default:
					t.Errorf("writer %d: %v", w, err)
				}
			})
		}
		wg.Wait()
		if wins != 1 || conflicts != writers-1 {
			t.Errorf("%d wins, %d conflicts; want 1 and %d", wins, conflicts, writers-1)
		}
	})
}

func TestStoreClosed(t *testing.T) {
	forEachStore(t, func(t *testing.T, st Store, sfx string) {
		if err := st.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := st.Get(context.Background(), "dlg-x"+sfx); err == nil {
			t.Error("Get after Close: no error")
		}
	})
}
