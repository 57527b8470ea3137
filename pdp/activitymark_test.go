package pdp_test

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/revalidation"
	"github.com/ciampdp/pdp/pdp/sources"
)

// markSchema lets a User view an Account for herself or on someone's
// behalf (a delegation, from the registry of delegations_test.go).
const markSchema = `
entity User;
@data_subject("self")
entity Account;
action view appliesTo { principal: [User], resource: [Account], context: {
  purpose?: String,
  delegation: { active: Bool, status: String } } };
`

const markRules = dormRules + `delegations:
  - id: poa-unused-2y
    basis: power_of_attorney
    unused_after: 730d
`

// markFixture is the real engine over a bundle with identity and
// delegation dormancy rules, the real consent ledger on a file store
// holding the activity, and the real dormancy service.
type markFixture struct {
	e      *pdp.Engine
	ledger *consent.Ledger
	store  *consent.FileStore
}

// seeded is the activity every markFixture starts from.
var (
	seenAt  = dormNow.Add(-100 * 24 * time.Hour)
	bob     = dormancy.Ref{Type: "user", ID: "bob"}
	alice   = dormancy.Ref{Type: "user", ID: "alice"}
	dlgUsed = dormancy.AgentRef("dlg-1")
)

func newMarkFixture(t *testing.T) *markFixture {
	t.Helper()
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema": []byte(markSchema),
		"schema/purposes.yaml": []byte(dormPurposes),
		"schema/dormancy.yaml": []byte(markRules),
		"policies/p.cedar":     []byte(dormPolicies),
		// alice and her account, so that a search has a candidate to allow
		"policies/entities.json": []byte(`[{"uid":{"type":"User","id":"alice"},"attrs":{},"parents":[]},
			{"uid":{"type":"Account","id":"acc-alice"},"attrs":{},"parents":[]}]`),
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := &markFixture{}
	if f.store, err = consent.OpenFile(filepath.Join(dir, "c.jsonl")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.store.Close() })
	clock := func() time.Time { return dormNow }
	f.ledger, err = consent.NewLedger(consent.LedgerConfig{Store: f.store, Registry: b.Purposes,
		SigningKey: ed25519.NewKeyFromSeed(make([]byte, 32)), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.ledger.Close() })
	seed := map[string]time.Time{alice.String(): seenAt, bob.String(): seenAt, dlgUsed.String(): seenAt}
	if err := f.ledger.ImportActivity(context.Background(), seed); err != nil {
		t.Fatal(err)
	}
	rs, err := revalidation.OpenFile(filepath.Join(dir, "r.jsonl"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	svc, err := revalidation.NewService(context.Background(), revalidation.Config{Store: rs, Activity: revalidation.LedgerActivity{Ledger: f.ledger}, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	reg := &registry{status: map[[2]string]string{{"user:bob", "user:alice"}: pdp.DelegationActive}}
	f.e = pdp.NewEngine(pdp.Components{Bundles: b, Consent: sources.Consent{Ledger: f.ledger}, Dormancy: svc, Delegations: reg, Now: clock})
	return f
}

func markOwn(user string) pdp.Request { return dormReq(user, "view") }

func markForAlice() pdp.Request {
	r := dormReq("bob", "view")
	r.Resource.ID = "acc-alice"
	r.Context["on_behalf_of"] = map[string]any{"type": "User", "id": "alice"}
	return r
}

// active is each ref's last activity: in the ledger (memory) and, after a
// flush, in its store (the file).
func (f *markFixture) active(t *testing.T, refs ...dormancy.Ref) (mem, stored map[dormancy.Ref]time.Time) {
	t.Helper()
	cr := make([]consent.Ref, len(refs))
	for i, r := range refs {
		cr[i] = consent.Ref(r)
	}
	m, err := f.ledger.LastActive(context.Background(), cr, dormNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ledger.FlushActivity(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err := f.store.Activities(context.Background(), cr)
	if err != nil {
		t.Fatal(err)
	}
	mem, stored = map[dormancy.Ref]time.Time{}, map[dormancy.Ref]time.Time{}
	for k, v := range m {
		mem[dormancy.Ref(k)] = v.UTC()
	}
	for k, v := range s {
		stored[dormancy.Ref(k)] = v.UTC()
	}
	return mem, stored
}

// wantActive checks each ref's last activity, in memory and stored.
func (f *markFixture) wantActive(t *testing.T, what string, want map[dormancy.Ref]time.Time) {
	t.Helper()
	refs := make([]dormancy.Ref, 0, len(want))
	for r := range want {
		refs = append(refs, r)
	}
	mem, stored := f.active(t, refs...)
	for r, at := range want {
		if !mem[r].Equal(at) || !stored[r].Equal(at) {
			t.Errorf("%s: %s last active %v (stored %v), want %v", what, r, mem[r], stored[r], at)
		}
	}
}

// TestActivityMarksArePending: an allowed decision's activity marks (its
// principal, its data subject, the delegation it relied on) are part of
// its Pending: not visible until committed, made by Commit, never made
// (nor stored) when dropped; in a batch each item's marks go with that
// item; Decide, without a trail, marks at once; a denied decision and a
// search mark nothing.
func TestActivityMarksArePending(t *testing.T) {
	ctx := context.Background()
	dataSubject := dormancy.SubjectRef(dormancy.Ref{Type: "account", ID: "acc-alice"}) // the account is its own data subject
	untouched := map[dormancy.Ref]time.Time{alice: seenAt, bob: seenAt, dlgUsed: seenAt}
	tests := []struct {
		name   string
		decide func(t *testing.T, e *pdp.Engine) *pdp.Pending
		drop   []int
		want   map[dormancy.Ref]time.Time
	}{
		{"committed: the delegate, the data subject and the delegation are active", func(t *testing.T, e *pdp.Engine) *pdp.Pending {
			d, p, err := e.DecideReserved(ctx, markForAlice())
			if err != nil || !d.Allowed || d.Delegation == nil {
				t.Fatalf("%v %v %v %s", err, d.Allowed, d.Reasons, d.Message)
			}
			return p
		}, nil, map[dormancy.Ref]time.Time{alice: seenAt, bob: dormNow, dlgUsed: dormNow, dataSubject: dormNow}},
		{"dropped: nothing is marked, nothing stored", func(t *testing.T, e *pdp.Engine) *pdp.Pending {
			_, p, err := e.DecideReserved(ctx, markForAlice())
			if err != nil {
				t.Fatal(err)
			}
			return p
		}, []int{0}, untouched},
		{"a batch: the dropped item's marks go, the other's stay", func(t *testing.T, e *pdp.Engine) *pdp.Pending {
			ds, p, err := e.DecideBatchReserved(ctx, []pdp.Request{markOwn("alice"), markForAlice()})
			if err != nil || !ds[0].Allowed || !ds[1].Allowed {
				t.Fatalf("%v %+v", err, ds)
			}
			return p
		}, []int{1}, map[dormancy.Ref]time.Time{alice: dormNow, bob: seenAt, dlgUsed: seenAt}},
		{"a denied decision marks nothing", func(t *testing.T, e *pdp.Engine) *pdp.Pending {
			r := markForAlice()
			r.Context["on_behalf_of"] = map[string]any{"type": "User", "id": "carol"}
			d, p, err := e.DecideReserved(ctx, r)
			if err != nil || d.Allowed {
				t.Fatalf("%v %v", err, d.Allowed)
			}
			if p != nil {
				t.Fatal("a denied decision reserved a change")
			}
			return p
		}, nil, untouched},
		{"a search marks nothing", func(t *testing.T, e *pdp.Engine) *pdp.Pending {
			r := markOwn("alice")
			r.Resource.ID = ""
			found, err := e.SearchResources(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != 1 || found[0].ID != "acc-alice" {
				t.Fatalf("search found %v, want acc-alice allowed (else it marks nothing for want of a candidate)", found)
			}
			return nil
		}, nil, untouched},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newMarkFixture(t)
			p := tc.decide(t, f.e)
			f.wantActive(t, "before Commit", untouched)
			for _, i := range tc.drop {
				p.Drop(i)
			}
			p.Commit(ctx)
			f.wantActive(t, "after Commit", tc.want)
		})
	}
	t.Run("Decide marks at once", func(t *testing.T) {
		f := newMarkFixture(t)
		if d, err := f.e.Decide(ctx, markForAlice()); err != nil || !d.Allowed {
			t.Fatalf("%v %v", err, d.Reasons)
		}
		f.wantActive(t, "after Decide", map[dormancy.Ref]time.Time{bob: dormNow, dlgUsed: dormNow})
	})
}
