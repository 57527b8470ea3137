package pdp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/changefeed"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/signals"
)

const stepUpSchema = `
entity User;
entity Account;
type StepUp = { outcome: String };
type Signals = { principal: Set<String>, data_subject: Set<String>, request: Set<String> };
action pay, transfer, view appliesTo { principal: [User], resource: [Account], context: { signals: Signals } };
action complete_step_up appliesTo { principal: [User], resource: [User], context: { step_up: StepUp } };
`

// A user reports only their own step-ups.
const stepUpPolicies = `
@id("permit-all") permit (principal, action in [Action::"pay", Action::"transfer", Action::"view"], resource);
@id("report-own-step-up") permit (principal, action == Action::"complete_step_up", resource) when { principal == resource };
`

// hold: three failures in 10 minutes → pay only with a step-up, for 30
// minutes; lock: the same count → transfer denied.
const stepUpRegistry = `
version: "t1"
failed_step_ups:
  hold: {report: complete_step_up, reporters: [app-a], count: 3, window: 10m, block: 30m, actions: [pay], effect: step_up_authentication, reason: step_up_failed}
  lock: {report: complete_step_up, reporters: [app-a], count: 3, window: 10m, block: 30m, actions: [transfer], effect: deny, reason: step_up_failed}
`

type stepUpFixture struct {
	b      *policy.Bundle
	engine *pdp.Engine
	feed   *changefeed.Changes
	now    time.Time
}

func newStepUpFixture(t testing.TB) *stepUpFixture {
	t.Helper()
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema": []byte(stepUpSchema),
		"policies/p.cedar":     []byte(stepUpPolicies),
		"schema/signals.yaml":  []byte(stepUpRegistry),
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &stepUpFixture{b: b, now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC),
		feed: changefeed.NewChangesSince(time.Second, time.Now().Add(-time.Hour))}
	f.engine = pdp.NewEngine(pdp.Components{Bundles: b, Velocity: &pdp.Velocity{Feed: f.feed}, Now: func() time.Time { return f.now }})
	return f
}

func stepUpReport(user, app, outcome string) pdp.Request {
	return pdp.Request{Subject: pdp.Entity{Type: "User", ID: user}, Action: pdp.Action{Name: "complete_step_up"},
		Resource: pdp.Entity{Type: "User", ID: user}, Application: app,
		Context: map[string]any{"step_up": map[string]any{"outcome": outcome}}}
}

func stepUpAsk(user, action string) pdp.Request {
	return pdp.Request{Subject: pdp.Entity{Type: "User", ID: user}, Action: pdp.Action{Name: action},
		Resource: pdp.Entity{Type: "Account", ID: "acc-1"}, Application: "app-a"}
}

// decide checks the answer and that the record replays to it.
func (f *stepUpFixture) decide(t *testing.T, req pdp.Request, allowed bool, reasons, obligations []string) pdp.Decision {
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

func (f *stepUpFixture) fail(t *testing.T, user string, n int) {
	t.Helper()
	for range n {
		f.decide(t, stepUpReport(user, "app-a", pdp.StepUpFailed), true, nil, nil)
		f.now = f.now.Add(time.Minute)
	}
}

var stepUp = []string{signals.EffectStepUp}

func TestFailedStepUpsThenPayment(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, f *stepUpFixture)
	}{
		{"two failures: payments unaffected", func(t *testing.T, f *stepUpFixture) {
			f.fail(t, "mallory", 2)
			f.decide(t, stepUpAsk("mallory", "pay"), true, nil, nil)
			f.decide(t, stepUpAsk("mallory", "transfer"), true, nil, nil)
		}},
		{"three failures: pay with step-up, transfer denied, views unaffected", func(t *testing.T, f *stepUpFixture) {
			f.fail(t, "mallory", 3)
			d := f.decide(t, stepUpAsk("mallory", "pay"), true, nil, stepUp)
			if len(d.Signals) != 1 || d.Signals[0].Rule != "hold" || d.Signals[0].Count != 3 || d.Signals[0].Window != "10m0s" ||
				d.Signals[0].Entity != `User::"mallory"` || d.Signals[0].Event != pdp.EventStepUpHold {
				t.Fatalf("the record names %+v", d.Signals)
			}
			if w := pdp.SignalWords(d.Signals[0]); !strings.Contains(w, `allowed only with step_up_authentication (step_up_failed): User::"mallory" failed 3 step-up authentications within 10m0s`) {
				t.Fatalf("words: %s", w)
			}
			d = f.decide(t, stepUpAsk("mallory", "transfer"), false, []string{"step_up_failed"}, nil)
			if !strings.Contains(d.Message, "denied (step_up_failed)") {
				t.Fatalf("message: %s", d.Message)
			}
			f.decide(t, stepUpAsk("mallory", "view"), true, nil, nil)
		}},
		{"another subject unaffected", func(t *testing.T, f *stepUpFixture) {
			f.fail(t, "mallory", 3)
			f.decide(t, stepUpAsk("alice", "pay"), true, nil, nil)
		}},
		{"failures spread beyond the window do not add up", func(t *testing.T, f *stepUpFixture) {
			f.fail(t, "mallory", 2)
			f.now = f.now.Add(10 * time.Minute)
			f.fail(t, "mallory", 1)
			f.decide(t, stepUpAsk("mallory", "pay"), true, nil, nil)
		}},
		{"the hold ends after block", func(t *testing.T, f *stepUpFixture) {
			f.fail(t, "mallory", 3) // the hold began a minute ago
			f.now = f.now.Add(28 * time.Minute)
			f.decide(t, stepUpAsk("mallory", "pay"), true, nil, stepUp)
			f.now = f.now.Add(time.Minute)
			f.decide(t, stepUpAsk("mallory", "pay"), true, nil, nil)
		}},
		{"a successful step-up lifts the hold and forgets the failures", func(t *testing.T, f *stepUpFixture) {
			f.fail(t, "mallory", 3)
			seq := f.feed.Seq()
			d := f.decide(t, stepUpReport("mallory", "app-a", pdp.StepUpSucceeded), true, nil, nil)
			if f.feed.Seq() != seq+1 {
				t.Fatalf("lifting the hold published %d changes", f.feed.Seq()-seq)
			}
			if w := pdp.SignalWords(d.Signals[0]); !strings.Contains(w, "reported a successful step-up") {
				t.Fatalf("words: %s", w)
			}
			f.decide(t, stepUpAsk("mallory", "pay"), true, nil, nil)
			f.fail(t, "mallory", 2)
			f.decide(t, stepUpAsk("mallory", "pay"), true, nil, nil)
		}},
		{"the failure that begins a hold tells the sidecars, once", func(t *testing.T, f *stepUpFixture) {
			seq := f.feed.Seq()
			f.fail(t, "mallory", 2)
			if f.feed.Seq() != seq {
				t.Fatal("a failure below the count published a change")
			}
			f.fail(t, "mallory", 1)
			if f.feed.Seq() != seq+1 {
				t.Fatalf("the hold published %d changes, want 1", f.feed.Seq()-seq)
			}
			f.decide(t, stepUpReport("alice", "app-a", pdp.StepUpSucceeded), true, nil, nil)
			if f.feed.Seq() != seq+1 {
				t.Fatal("a success without a hold published a change")
			}
		}},
		{"the report's record counts the failures", func(t *testing.T, f *stepUpFixture) {
			f.fail(t, "mallory", 1)
			d := f.decide(t, stepUpReport("mallory", "app-a", pdp.StepUpFailed), true, nil, nil)
			if len(d.Signals) != 2 || d.Signals[0].Count != 2 || d.Signals[0].Event != pdp.EventStepUpReport || d.Signals[0].Outcome != pdp.StepUpFailed {
				t.Fatalf("the record names %+v", d.Signals)
			}
			if w := pdp.SignalWords(d.Signals[0]); !strings.Contains(w, `User::"mallory" reported a failed step-up: 2 within 10m0s (failed step-up rule hold)`) {
				t.Fatalf("words: %s", w)
			}
		}},
		{"a report from an application not among the reporters: refused, not counted", func(t *testing.T, f *stepUpFixture) {
			for range 3 {
				d := f.decide(t, stepUpReport("mallory", "marketing", pdp.StepUpFailed), false, []string{"report_not_allowed"}, nil)
				if !strings.Contains(d.Message, "application marketing may not report step-up outcomes") {
					t.Fatalf("message: %s", d.Message)
				}
			}
			f.decide(t, stepUpAsk("mallory", "pay"), true, nil, nil)
			f.decide(t, stepUpAsk("mallory", "transfer"), true, nil, nil)
		}},
		{"a report from an application no rule lists counts nowhere", func(t *testing.T, f *stepUpFixture) {
			// Rules of one report action list the same reporters (checked
			// at load: TestStepUpRulesOfOneReportShareReporters).
			for range 3 {
				f.decide(t, stepUpReport("mallory", "app-b", pdp.StepUpFailed), false, []string{"report_not_allowed"}, nil)
			}
			f.decide(t, stepUpAsk("mallory", "transfer"), true, nil, nil)
		}},
		{"a report the policies deny (for someone else) does not count", func(t *testing.T, f *stepUpFixture) {
			for range 3 {
				r := stepUpReport("mallory", "app-a", pdp.StepUpFailed)
				r.Resource.ID = "alice"
				f.decide(t, r, false, []string{"not_permitted"}, nil)
			}
			f.decide(t, stepUpAsk("alice", "pay"), true, nil, nil)
			f.decide(t, stepUpAsk("mallory", "pay"), true, nil, nil)
		}},
		{"a malformed or missing outcome is invalid input", func(t *testing.T, f *stepUpFixture) {
			r := stepUpReport("mallory", "app-a", "maybe")
			f.decide(t, r, false, []string{"invalid_input"}, nil)
			r.Context = nil
			f.decide(t, r, false, []string{"invalid_input"}, nil)
			f.decide(t, stepUpAsk("mallory", "pay"), true, nil, nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newStepUpFixture(t)) })
	}
}

// TestStepUpOutcome: the decoder of context.step_up.
func TestStepUpOutcome(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  map[string]any
		want string
		err  string
	}{
		{"absent", map[string]any{"ip": "x"}, "", ""},
		{"nil context", nil, "", ""},
		{"failed", map[string]any{"step_up": map[string]any{"outcome": "failed"}}, "failed", ""},
		{"succeeded", map[string]any{"step_up": map[string]any{"outcome": "succeeded"}}, "succeeded", ""},
		{"a string", map[string]any{"step_up": "failed"}, "", "got a string"},
		{"null", map[string]any{"step_up": nil}, "", "got null"},
		{"no outcome", map[string]any{"step_up": map[string]any{}}, "", "outcome is required"},
		{"outcome a number", map[string]any{"step_up": map[string]any{"outcome": json.Number("1")}}, "", "outcome is required"},
		{"unknown outcome", map[string]any{"step_up": map[string]any{"outcome": "FAILED"}}, "", `outcome "FAILED" is neither`},
		{"unknown member", map[string]any{"step_up": map[string]any{"outcome": "failed", "count": json.Number("3")}}, "", `unknown member "count"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pdp.StepUpOutcome(tc.ctx)
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %q %v, want %q", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, pdp.ErrStepUp) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want ErrStepUp with %q", err, tc.err)
			}
		})
	}
}

// TestStepUpCountersBounded: failed step-up counters share
// signals.velocity_max_keys with the velocity rules; beyond it a new
// subject is not counted (and Dropped says so).
func TestStepUpCountersBounded(t *testing.T) {
	f := newStepUpFixture(t)
	v := &pdp.Velocity{MaxKeys: 2}
	f.engine = pdp.NewEngine(pdp.Components{Bundles: f.b, Velocity: v, Now: func() time.Time { return f.now }})
	for _, u := range []string{"u1", "u2", "u3"} {
		f.decide(t, stepUpReport(u, "app-a", pdp.StepUpFailed), true, nil, nil)
	}
	if v.Dropped() != 4 { // u1 fills both (two rules): u2 and u3 are not counted
		t.Fatalf("dropped %d, want 4", v.Dropped())
	}
	// Past the window the old counters make room.
	f.now = f.now.Add(11 * time.Minute)
	f.fail(t, "u3", 3)
	f.decide(t, stepUpAsk("u3", "pay"), true, nil, stepUp)
}

// touches records the activity the engine notes (the consent ledger's
// Touch): a hand-written stand-in at an edge this test does not read.
type touches struct{ subjects []string }

func (t *touches) CheckConsents(context.Context, []pdp.ConsentQuery) ([]pdp.ConsentFact, error) {
	return nil, errors.New("no consent here")
}
func (t *touches) Touch(s pdp.ObjectRef, _ time.Time) { t.subjects = append(t.subjects, s.ID) }

// TestFailedStepUpIsNoActivity: a failed step-up (perhaps someone with
// the password) does not count as the customer's activity, so it cannot
// keep a dormant identity from being dormant; a passed one does.
func TestFailedStepUpIsNoActivity(t *testing.T) {
	f := newStepUpFixture(t)
	tc := &touches{}
	f.engine = pdp.NewEngine(pdp.Components{Bundles: f.b, Velocity: &pdp.Velocity{}, Consent: tc, Now: func() time.Time { return f.now }})
	f.decide(t, stepUpReport("heidi", "app-a", pdp.StepUpFailed), true, nil, nil)
	if len(tc.subjects) != 0 {
		t.Fatalf("a failed step-up touched %v", tc.subjects)
	}
	f.decide(t, stepUpReport("heidi", "app-a", pdp.StepUpSucceeded), true, nil, nil)
	if !slices.Equal(tc.subjects, []string{"heidi"}) {
		t.Fatalf("a passed step-up touched %v", tc.subjects)
	}
}

// TestStepUpReportsInABatch: reports in a batch count like single ones,
// and the hold they begin is published once.
func TestStepUpReportsInABatch(t *testing.T) {
	f := newStepUpFixture(t)
	seq := f.feed.Seq()
	r := stepUpReport("mallory", "app-a", pdp.StepUpFailed)
	ds, err := f.engine.DecideBatch(context.Background(), []pdp.Request{r, r, r, stepUpAsk("mallory", "pay")})
	if err != nil {
		t.Fatal(err)
	}
	if !ds[2].Allowed || ds[2].Signals[0].Count != 3 || !slices.Equal(ds[3].Obligations, stepUp) {
		t.Fatalf("batch: %+v / %+v", ds[2].Signals, ds[3])
	}
	if f.feed.Seq() != seq+1 {
		t.Fatalf("published %d changes, want 1", f.feed.Seq()-seq)
	}
}

// TestStepUpCountsNotCrowdedOutByValues: the velocity rules' values (IPs)
// and the failed step-up rules' subjects are bounded apart, so a flood of
// denied requests from many IPs cannot switch the step-up holds off.
func TestStepUpCountsNotCrowdedOutByValues(t *testing.T) {
	f := newStepUpFixture(t)
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema": []byte(stepUpSchema),
		"policies/p.cedar":     []byte(stepUpPolicies),
		"schema/signals.yaml": []byte(stepUpRegistry + `velocity:
  stuffing: {key: ip, threshold: 30, window: 1m, block: 15m, reason: risk_velocity}
`),
	})
	if err != nil {
		t.Fatal(err)
	}
	v := &pdp.Velocity{MaxKeys: 4}
	f.b, f.engine = b, pdp.NewEngine(pdp.Components{Bundles: b, Velocity: v, Now: func() time.Time { return f.now }})
	for i := range 10 { // denied requests from ten IPs: more values than MaxKeys
		r := stepUpReport("mallory", "app-a", pdp.StepUpFailed)
		r.Resource.ID = "alice"
		r.Context["ip"] = fmt.Sprintf("203.0.113.%d", i)
		f.decide(t, r, false, []string{"not_permitted"}, nil)
	}
	if v.Dropped() == 0 {
		t.Fatal("the flood of values did not fill the bound: the test proves nothing")
	}
	f.fail(t, "alice", 3)
	f.decide(t, stepUpAsk("alice", "pay"), true, nil, stepUp)
}
