package pdp_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/signalledger"
	"github.com/ciampdp/pdp/pdp/signals"
)

const riskSchema = `
entity User;
entity Account;
type Session = { id?: String, auth_time?: Long };
type Signals = { principal: Set<String>, data_subject: Set<String> };
action pay, view appliesTo { principal: [User], resource: [Account], context: {
  session?: Session, ip?: String, signals: Signals } };
action login appliesTo { principal: [User], resource: [Account], context: { ip?: String } };
`

// Policies permit pay and view for everyone: the guard, not the policies,
// must deny. One policy reads context.signals.
const riskPolicies = `
@id("permit-pay-view") permit (principal, action in [Action::"pay", Action::"view"], resource);
@id("no-view-on-low-assurance") @reason("assurance_too_low")
forbid (principal, action == Action::"view", resource)
  when { context.signals.principal.contains("assurance-level-change") };
`

const riskRegistry = `
version: "t1"
subjects:
  - {format: iss_sub, iss: "https://idp.example/", entity: User}
events:
  credential-compromise:
    reason: account_compromised
    effects: {view: step_up_authentication, "*": deny}
    lifted_by: [credential-change]
  session-revoked:
    reason: session_revoked
    effects: {"*": deny}
    scope: session
  assurance-level-change:
    reason: assurance_too_low
    effects: {"*": none}
    match: {change_direction: decrease}
velocity:
  stuffing: {key: ip, threshold: 3, window: 1m, block: 5m, reason: risk_velocity}
`

// riskEntities are known to the bundle (a search needs them).
const riskEntities = `[{"uid":{"type":"User","id":"mallory"},"attrs":{},"parents":[]},
 {"uid":{"type":"Account","id":"acc-1"},"attrs":{},"parents":[]}]`

type riskFixture struct {
	b      *policy.Bundle
	ledger *signalledger.Ledger
	engine *pdp.Engine
	now    time.Time
	jti    int
}

func newRiskFixture(t testing.TB) *riskFixture {
	t.Helper()
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema":   []byte(riskSchema),
		"policies/p.cedar":       []byte(riskPolicies),
		"schema/signals.yaml":    []byte(riskRegistry),
		"policies/entities.json": []byte(riskEntities),
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := signalledger.OpenFile(filepath.Join(t.TempDir(), "signals.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	f := &riskFixture{b: b, now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	f.ledger, err = signalledger.NewLedger(context.Background(), signalledger.LedgerConfig{Store: st, Registry: b.Signals, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	f.engine = pdp.NewEngine(pdp.Components{Bundles: b, Signals: f.ledger, Velocity: &pdp.Velocity{}, Now: func() time.Time { return f.now }})
	return f
}

// push stores one event of type (short name) for user at the fixture's
// current time.
func (f *riskFixture) push(t testing.TB, typ, user string, payload string) {
	t.Helper()
	uri, _ := signals.TypeURI(typ)
	f.jti++
	if payload == "" {
		payload = "{}"
	}
	set := &signals.SET{Issuer: "https://risk.example/", JTI: "jti-" + string(rune('a'+f.jti)), IssuedAt: f.now,
		Events: []signals.SETEvent{{Type: uri, Time: f.now, Payload: json.RawMessage(payload),
			Subject: &signals.SubjectID{Format: "iss_sub", Iss: "https://idp.example/", Sub: user}}}}
	if _, err := f.ledger.Receive(context.Background(), set); err != nil {
		t.Fatal(err)
	}
}

func riskReq(user, action string, ctx map[string]any) pdp.Request {
	return pdp.Request{Subject: pdp.Entity{Type: "User", ID: user}, Action: pdp.Action{Name: action},
		Resource: pdp.Entity{Type: "Account", ID: "acc-1"}, Context: ctx}
}

func (f *riskFixture) decide(t *testing.T, req pdp.Request, allowed bool, reasons, obligations []string) pdp.Decision {
	t.Helper()
	d, err := f.engine.Decide(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if reasons == nil {
		reasons = []string{}
	}
	if obligations == nil {
		obligations = []string{}
	}
	if d.Allowed != allowed || !slices.Equal(d.Reasons, reasons) || !slices.Equal(d.Obligations, obligations) {
		t.Fatalf("%s %s: got %v %v %v (%s), want %v %v %v", req.Subject.ID, req.Action.Name, d.Allowed, d.Reasons, d.Obligations, d.Message, allowed, reasons, obligations)
	}
	// The record replays to the same answer, after a round trip through
	// JSON (as the trail keeps it).
	raw, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var rec pdp.Decision
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	if r := pdp.NewReplayer().Replay(f.b, req, rec, pdp.ReplayOptions{}); r.Outcome != pdp.Reproduced {
		t.Fatalf("replay: %s %v %v", r.Outcome, r.Differences, r.Missing)
	}
	return d
}

func TestRiskGuard(t *testing.T) {
	f := newRiskFixture(t)
	none := map[string]any{}

	t.Run("credential compromise: payments denied, views with step-up, lifted by a credential change", func(t *testing.T) {
		f.decide(t, riskReq("bob", "pay", none), true, nil, nil)
		f.push(t, "credential-compromise", "bob", "")
		d := f.decide(t, riskReq("bob", "pay", none), false, []string{"account_compromised"}, nil)
		if len(d.Signals) != 1 || d.Signals[0].JTI == "" || d.Signals[0].Rule != "credential-compromise" || d.Signals[0].Subject.Sub != "bob" || d.Signals[0].Role != pdp.SignalRolePrincipal {
			t.Fatalf("the record names %+v", d.Signals)
		}
		if d.Message == "" {
			t.Fatal("a deny by a signal has no message")
		}
		f.decide(t, riskReq("bob", "view", none), true, nil, []string{"step_up_authentication"})
		// Acting for someone compromised is denied too.
		f.decide(t, riskReq("carol", "pay", map[string]any{"on_behalf_of": map[string]any{"type": "User", "id": "bob"}}), false, []string{"account_compromised"}, nil)
		f.now = f.now.Add(time.Minute)
		f.push(t, "credential-change", "bob", "")
		f.decide(t, riskReq("bob", "pay", none), true, nil, nil)
	})
	t.Run("session revoked: older sessions denied, a fresh login allowed", func(t *testing.T) {
		f.push(t, "session-revoked", "alice", "")
		revokedAt := f.now
		f.now = f.now.Add(time.Minute)
		old := map[string]any{"session": map[string]any{"id": "s-1", "auth_time": json.Number("1796600000")}}
		fresh := map[string]any{"session": map[string]any{"id": "s-2", "auth_time": json.Number(jsonSeconds(revokedAt.Add(30 * time.Second)))}}
		f.decide(t, riskReq("alice", "view", old), false, []string{"session_revoked"}, nil)
		f.decide(t, riskReq("alice", "view", fresh), true, nil, nil)
		f.decide(t, riskReq("alice", "view", map[string]any{"session": "yesterday"}), false, []string{"invalid_input"}, nil)
	})
	t.Run("policies see context.signals", func(t *testing.T) {
		f.push(t, "assurance-level-change", "dave", `{"change_direction":"decrease"}`)
		f.decide(t, riskReq("dave", "view", none), false, []string{"assurance_too_low"}, nil)
		f.decide(t, riskReq("dave", "pay", none), true, nil, nil)
	})
	t.Run("velocity: denials for distinct subjects from one IP block it", func(t *testing.T) {
		ip := map[string]any{"ip": "203.0.113.9"}
		for _, u := range []string{"u1", "u2", "u2", "u3"} {
			if u == "u3" {
				f.decide(t, riskReq("erin", "pay", ip), true, nil, nil) // two distinct so far
			}
			f.decide(t, riskReq(u, "login", ip), false, []string{"not_permitted"}, nil)
		}
		d := f.decide(t, riskReq("erin", "pay", ip), false, []string{"risk_velocity"}, nil)
		if len(d.Signals) != 1 || d.Signals[0].Count != 3 || d.Signals[0].Transmitter != pdp.TransmitterPDP {
			t.Fatalf("velocity fact %+v", d.Signals)
		}
		f.decide(t, riskReq("erin", "pay", map[string]any{"ip": "198.51.100.1"}), true, nil, nil)
		f.now = f.now.Add(6 * time.Minute)
		f.decide(t, riskReq("erin", "pay", ip), true, nil, nil)
	})
}

func jsonSeconds(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// A search's denied candidates are no one's attempt: they do not feed the
// velocity rules.
func TestVelocityIgnoresSearch(t *testing.T) {
	f := newRiskFixture(t)
	ip := map[string]any{"ip": "192.0.2.1"}
	for range 3 {
		if got, err := f.engine.SearchActions(context.Background(), pdp.Request{Subject: pdp.Entity{Type: "User", ID: "mallory"},
			Resource: pdp.Entity{Type: "Account", ID: "acc-1"}, Context: ip}); err != nil || !slices.Equal(got, []string{"pay", "view"}) {
			t.Fatalf("search: %v %v", got, err)
		}
	}
	for _, u := range []string{"u1", "u2"} {
		f.decide(t, riskReq(u, "login", ip), false, []string{"not_permitted"}, nil)
	}
	f.decide(t, riskReq("erin", "pay", ip), true, nil, nil)
}

// flakyStore is a signal store that can stop answering (a PostgreSQL
// outage, at the edge); it keeps its events in a real file store.
type flakyStore struct {
	signalledger.Store
	down bool
}

func (s *flakyStore) Since(ctx context.Context, after int64) ([]signals.Event, error) {
	if s.down {
		return nil, errors.New("connection refused")
	}
	return s.Store.Since(ctx, after)
}

// A shared ledger that could not be read for longer than its staleness
// bound fails decisions closed (facts_unavailable), and they come back
// once it answers again.
func TestRiskGuardStaleLedger(t *testing.T) {
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema": []byte(riskSchema), "policies/p.cedar": []byte(riskPolicies),
		"schema/signals.yaml": []byte(riskRegistry), "policies/entities.json": []byte(riskEntities),
	})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := signalledger.OpenFile(filepath.Join(t.TempDir(), "s.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	st := &flakyStore{Store: fs}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	l, err := signalledger.NewLedger(context.Background(), signalledger.LedgerConfig{Store: st, Registry: b.Signals, Now: clock, MaxStaleness: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e := pdp.NewEngine(pdp.Components{Bundles: b, Signals: l, Now: clock})
	ask := func() pdp.Decision {
		d, err := e.Decide(context.Background(), riskReq("bob", "pay", map[string]any{}))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := ask(); !d.Allowed {
		t.Fatalf("fresh ledger: %v", d.Reasons)
	}
	st.down = true
	now = now.Add(5 * time.Second)
	if err := l.Sync(context.Background()); err == nil {
		t.Fatal("a store that is down synced")
	}
	if d := ask(); !d.Allowed {
		t.Fatalf("within the bound: %v", d.Reasons)
	}
	now = now.Add(6 * time.Second)
	if d := ask(); d.Allowed || !slices.Equal(d.Reasons, []string{"facts_unavailable"}) || d.Message == "" {
		t.Fatalf("stale ledger: %v %v %s", d.Allowed, d.Reasons, d.Message)
	}
	st.down = false
	if err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := ask(); !d.Allowed {
		t.Fatalf("after the store is back: %v", d.Reasons)
	}
}
