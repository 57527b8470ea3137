package recorder

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/dormancy"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/revalidation"
	"github.com/ciampdp/pdp/pdp/sources"
)

// A bundle whose users may view any account, for themselves or for
// someone whose power of attorney they hold; a power of attorney unused
// for 730 days is dormant.
const (
	activitySchema = `
entity User;
@data_subject("self")
entity Account;
action view appliesTo { principal: [User], resource: [Account], context: {
  purpose?: String, delegation: { active: Bool, status: String } } };
`
	activityPolicies = `@id("permit-view") permit (principal, action == Action::"view", resource) when { context.delegation.active || context.delegation.status == "not_acting" };`
	activityPurposes = `
version: "t1"
purposes:
  service:
    version: 1
    applications: [bank]
    rules:
      "*": {basis: contract}
`
	activityRules = `
version: "t1"
delegations:
  - id: poa-unused-2y
    basis: power_of_attorney
    unused_after: 730d
`
)

// poaRecords is a hand-written delegation source at the engine's edge
// (the real records are tested in pdp/delegation and end to end): victor
// holds alice's power of attorney poa-alice-victor.
type poaRecords struct{}

func (poaRecords) ResolveDelegations(_ context.Context, qs []pdp.DelegationQuery) ([]pdp.DelegationProof, error) {
	out := make([]pdp.DelegationProof, len(qs))
	for i, q := range qs {
		out[i] = pdp.DelegationProof{Status: pdp.DelegationNone}
		if q.Actor.ID == "victor" && q.Principal.ID == "alice" {
			out[i] = pdp.DelegationProof{Status: pdp.DelegationActive, Chain: []string{"poa-alice-victor"}, Considered: []string{"poa-alice-victor"},
				Basis: "power_of_attorney", Since: activityT0.AddDate(-6, 0, 0)}
		}
	}
	return out, nil
}

// activityT0 is when the tests begin: victor last used alice's power of
// attorney 700 days before, 30 days from its going dormant.
var (
	activityT0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	poaUse     = dormancy.AgentRef("poa-alice-victor")
)

// activityFixture is the real engine with the real dormancy service over
// the real consent ledger's activity (file store) behind a recorder whose
// log can be made to fail (the storage edge), on a clock the test moves.
type activityFixture struct {
	countedFixture
	ledger *consent.Ledger
	store  *consent.FileStore
	now    atomic.Pointer[time.Time]
}

func newActivityFixture(t *testing.T, mode string) *activityFixture {
	t.Helper()
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema": []byte(activitySchema),
		"schema/purposes.yaml": []byte(activityPurposes),
		"schema/dormancy.yaml": []byte(activityRules),
		"policies/p.cedar":     []byte(activityPolicies),
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &activityFixture{countedFixture: countedFixture{log: &flakyLog{}}}
	t0 := activityT0
	f.now.Store(&t0)
	clock := func() time.Time { return *f.now.Load() }
	dir := t.TempDir()
	if f.store, err = consent.OpenFile(filepath.Join(dir, "consent.jsonl")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.store.Close() })
	f.ledger, err = consent.NewLedger(consent.LedgerConfig{Store: f.store, Registry: b.Purposes,
		SigningKey: ed25519.NewKeyFromSeed(make([]byte, 32)), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.ledger.Close() })
	if err := f.ledger.ImportActivity(context.Background(), map[string]time.Time{poaUse.String(): activityT0.AddDate(0, 0, -700)}); err != nil {
		t.Fatal(err)
	}
	rs, err := revalidation.OpenFile(filepath.Join(dir, "revalidations.jsonl"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	svc, err := revalidation.NewService(context.Background(), revalidation.Config{Store: rs, Activity: revalidation.LedgerActivity{Ledger: f.ledger}, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	e := pdp.NewEngine(pdp.Components{Bundles: fixedBundle{b}, Consent: sources.Consent{Ledger: f.ledger}, Dormancy: svc, Delegations: poaRecords{}, Now: clock})
	if f.r, err = NewRecorder(e, f.log, RecorderOptions{Mode: mode, Buffer: 16, FlushInterval: -1}); err != nil { // flush interval off because each decision must reach the trail (or fail) before the next
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.r.Close() })
	return f
}

// victorForAlice is victor viewing alice's account with her power of
// attorney.
func victorForAlice() pdp.Request {
	return pdp.Request{Application: "bank", Subject: pdp.Entity{Type: "User", ID: "victor"}, Action: pdp.Action{Name: "view"},
		Resource: pdp.Entity{Type: "Account", ID: "acc-alice"},
		Context:  map[string]any{"purpose": "service", "on_behalf_of": map[string]any{"type": "User", "id": "alice"}}}
}

// breakActivityTrail makes the log fail; in async mode a first record is
// then lost (answered, as async accepts: one that relies on no delegation)
// so that later decisions are denied.
func (f *activityFixture) breakActivityTrail(t *testing.T, mode string) {
	t.Helper()
	disk := errors.New("no space left on device")
	f.log.err.Store(&disk)
	if mode == ModeAsync {
		req := victorForAlice()
		delete(req.Context, "on_behalf_of")
		_, _ = f.r.Decide(context.Background(), req)
		eventually(t, func() bool { return f.r.Stats().Failures > 0 })
	}
}

// lastUsed is the power of attorney's last use in the ledger and, after a
// flush, in its store (the file).
func (f *activityFixture) lastUsed(t *testing.T) (mem, stored time.Time) {
	t.Helper()
	ctx := context.Background()
	m, err := f.ledger.LastActive(ctx, []consent.Ref{consent.Ref(poaUse)}, f.clock(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ledger.FlushActivity(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := f.store.Activities(ctx, []consent.Ref{consent.Ref(poaUse)})
	if err != nil {
		t.Fatal(err)
	}
	return m[consent.Ref(poaUse)].UTC(), s[consent.Ref(poaUse)].UTC()
}

func (f *activityFixture) clock() time.Time { return *f.now.Load() }

func (f *activityFixture) wantLastUsed(t *testing.T, what string, want time.Time) {
	t.Helper()
	if mem, stored := f.lastUsed(t); !mem.Equal(want) || !stored.Equal(want) {
		t.Fatalf("%s: power of attorney last used %v (stored %v), want %v", what, mem, stored, want)
	}
}

func (f *activityFixture) advance(d time.Duration) {
	t := f.clock().Add(d)
	f.now.Store(&t)
}

// TestActivityWaitsForTheRecord: an allowed decision relying on a power
// of attorney whose record cannot be written (denied trail_unavailable)
// does not move the delegation's last use, in memory or in the activity's
// store, so the power of attorney still goes dormant on time; once the
// trail records again, a recorded decision moves it (and keeps the power
// of attorney from going dormant). In sync mode (the record is durable
// before the answer) and in async mode (decisions denied while the trail
// is down). Batch items each keep or lose their own marks.
func TestActivityWaitsForTheRecord(t *testing.T) {
	const month = 31 * 24 * time.Hour
	before := activityT0.AddDate(0, 0, -700)
	for _, mode := range []string{ModeSync, ModeAsync} {
		t.Run(mode+"/an unrecorded use does not keep the power of attorney alive", func(t *testing.T) {
			f := newActivityFixture(t, mode)
			f.want(t, victorForAlice(), true, nil, nil) // recorded: moves the last use to T0
			f.wantLastUsed(t, "after a recorded use", activityT0)
			f.advance(month)
			f.breakActivityTrail(t, mode)
			for range 3 {
				isDenied(t, f.decide(t, victorForAlice()))
			}
			f.wantLastUsed(t, "after unrecorded uses", activityT0)
			f.mendTrail(t)
			f.advance(700 * 24 * time.Hour) // 731 days after the last recorded use
			d := f.want(t, victorForAlice(), false, []string{"delegation_dormant"}, []string{"delegation_reconfirmation"})
			if len(d.Dormancy) != 1 || !d.Dormancy[0].LastActivity.Equal(activityT0) {
				t.Fatalf("the record does not name the last recorded use: %+v", d.Dormancy)
			}
		})
		t.Run(mode+"/after recovery a recorded use moves the last use", func(t *testing.T) {
			f := newActivityFixture(t, mode)
			f.breakActivityTrail(t, mode)
			isDenied(t, f.decide(t, victorForAlice()))
			f.wantLastUsed(t, "after an unrecorded use", before)
			f.mendTrail(t)
			f.advance(time.Hour)
			f.want(t, victorForAlice(), true, nil, nil)
			f.wantLastUsed(t, "after a recorded use", activityT0.Add(time.Hour))
			f.advance(month) // 731 days after the seeded use, 31 after the recorded one
			f.want(t, victorForAlice(), true, nil, nil)
		})
		t.Run(mode+"/a batch item whose record failed marks nothing", func(t *testing.T) {
			f := newActivityFixture(t, mode)
			f.breakActivityTrail(t, mode)
			ds, err := f.r.DecideBatch(context.Background(), []pdp.Request{victorForAlice(), victorForAlice()})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				isDenied(t, d)
			}
			f.wantLastUsed(t, "after an unrecorded batch", before)
			f.mendTrail(t)
			ds, err = f.r.DecideBatch(context.Background(), []pdp.Request{victorForAlice()})
			if err != nil || len(ds) != 1 || !ds[0].Allowed || !slices.Equal(ds[0].Reasons, []string{}) {
				t.Fatalf("%v %+v", err, ds)
			}
			f.wantLastUsed(t, "after a recorded batch", activityT0)
		})
	}
}
