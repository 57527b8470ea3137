package recorder

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/changefeed"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/trail"
)

// A bundle with a failed step-up rule (three failures within 10 minutes:
// pay only with a step-up) and a velocity rule (denials for three
// distinct subjects from one IP within a minute: the IP is blocked). The
// policies deny every login.
const (
	countedSchema = `
entity User;
entity Account;
type StepUp = { outcome: String };
type Signals = { principal: Set<String>, data_subject: Set<String>, request: Set<String> };
action pay, login appliesTo { principal: [User], resource: [Account], context: { signals: Signals, ip?: String } };
action complete_step_up appliesTo { principal: [User], resource: [User], context: { step_up: StepUp } };
`
	countedPolicies = `
@id("permit-pay") permit (principal, action == Action::"pay", resource);
@id("report-own-step-up") permit (principal, action == Action::"complete_step_up", resource) when { principal == resource };
`
	countedRegistry = `
version: "t1"
failed_step_ups:
  hold: {report: complete_step_up, reporters: [app-a], count: 3, window: 10m, block: 30m, actions: [pay], effect: step_up_authentication, reason: step_up_failed}
velocity:
  stuffing: {key: ip, threshold: 3, window: 1m, block: 5m, reason: risk_velocity}
`
)

// countedFixture is the real engine with its counters behind a recorder
// whose log can be made to fail (the storage edge).
type countedFixture struct {
	r    *Recorder
	log  *flakyLog
	feed *changefeed.Changes
}

func newCountedFixture(t *testing.T, mode string) *countedFixture {
	t.Helper()
	f := &countedFixture{log: &flakyLog{}}
	f.r = f.recorder(t, f.log, mode)
	return f
}

// recorder is the real engine over the counted bundle behind a recorder
// writing into l.
func (f *countedFixture) recorder(t *testing.T, l Appender, mode string) *Recorder {
	t.Helper()
	b, err := policy.LoadFiles(map[string][]byte{
		"schema/s.cedarschema": []byte(countedSchema),
		"policies/p.cedar":     []byte(countedPolicies),
		"schema/signals.yaml":  []byte(countedRegistry),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.feed = changefeed.NewChangesSince(time.Second, time.Now().Add(-time.Hour))
	e := pdp.NewEngine(pdp.Components{Bundles: fixedBundle{b}, Velocity: &pdp.Velocity{Feed: f.feed}})
	// FlushInterval -1: the async writer writes each record as soon as it
	// is buffered instead of gathering a batch first. It does not make
	// enqueue wait for the write; it only shortens how long breakTrail
	// waits to see the first failure.
	r, err := NewRecorder(e, l, RecorderOptions{Mode: mode, Buffer: 16, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// breakTrail makes the log fail; in async mode a first record is then
// lost (answered, as async accepts) so that later decisions are denied.
func (f *countedFixture) breakTrail(t *testing.T, mode string) {
	t.Helper()
	disk := errors.New("no space left on device")
	f.log.err.Store(&disk)
	if mode == ModeAsync {
		_, _ = f.r.Decide(context.Background(), countedPay("nobody", ""))
		eventually(t, func() bool { return f.r.Stats().Failures > 0 })
	}
}

// mendTrail makes the log write again and waits until the recorder
// records.
func (f *countedFixture) mendTrail(t *testing.T) {
	t.Helper()
	f.log.err.Store(nil)
	eventually(t, func() bool { return f.r.Ready(context.Background()) == nil })
}

func countedReport(user, outcome string) pdp.Request {
	return pdp.Request{Subject: pdp.Entity{Type: "User", ID: user}, Action: pdp.Action{Name: "complete_step_up"},
		Resource: pdp.Entity{Type: "User", ID: user}, Application: "app-a",
		Context: map[string]any{"step_up": map[string]any{"outcome": outcome}}}
}

func countedPay(user, ip string) pdp.Request {
	r := pdp.Request{Subject: pdp.Entity{Type: "User", ID: user}, Action: pdp.Action{Name: "pay"},
		Resource: pdp.Entity{Type: "Account", ID: "acc-1"}, Application: "app-a"}
	if ip != "" {
		r.Context = map[string]any{"ip": ip}
	}
	return r
}

func countedLogin(user, ip string) pdp.Request {
	r := countedPay(user, ip)
	r.Action.Name = "login"
	return r
}

func (f *countedFixture) decide(t *testing.T, req pdp.Request) pdp.Decision {
	t.Helper()
	d, err := f.r.Decide(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (f *countedFixture) want(t *testing.T, req pdp.Request, allowed bool, reasons, obligations []string) pdp.Decision {
	t.Helper()
	d := f.decide(t, req)
	if reasons == nil {
		reasons = []string{}
	}
	if obligations == nil {
		obligations = []string{}
	}
	if d.Allowed != allowed || !slices.Equal(d.Reasons, reasons) || !slices.Equal(d.Obligations, obligations) {
		t.Fatalf("%s %s: got %v %v %v (%s), want %v %v %v", req.Subject.ID, req.Action.Name, d.Allowed, d.Reasons, d.Obligations, d.Message, allowed, reasons, obligations)
	}
	return d
}

var withStepUp = []string{"step_up_authentication"}

// TestCountersWaitForTheRecord: a decision whose record cannot be
// written (denied trail_unavailable) changes nothing in the velocity and
// failed step-up counters: a failed step-up is not counted, a success
// does not lift a hold, a denial does not count towards a velocity
// block, and no sidecar is told of a hold; once the trail records again,
// counting resumes. In sync mode (the record is durable before the
// answer) and in async mode (decisions denied while the trail is down).
func TestCountersWaitForTheRecord(t *testing.T) {
	for _, mode := range []string{ModeSync, ModeAsync} {
		t.Run(mode+"/failed step-ups whose records failed are not counted", func(t *testing.T) {
			f := newCountedFixture(t, mode)
			seq := f.feed.Seq()
			f.breakTrail(t, mode)
			for range 3 {
				isDenied(t, f.decide(t, countedReport("mallory", pdp.StepUpFailed)))
			}
			if f.feed.Seq() != seq {
				t.Fatal("a hold no record began was published to the sidecars")
			}
			f.mendTrail(t)
			f.want(t, countedPay("mallory", ""), true, nil, nil)
			for i := range 3 {
				d := f.want(t, countedReport("mallory", pdp.StepUpFailed), true, nil, nil)
				if d.Signals[0].Count != i+1 {
					t.Fatalf("report %d counts %d failures, want %d: %+v", i+1, d.Signals[0].Count, i+1, d.Signals)
				}
			}
			f.want(t, countedPay("mallory", ""), true, nil, withStepUp)
			if f.feed.Seq() != seq+1 {
				t.Fatalf("the recorded hold published %d changes, want 1", f.feed.Seq()-seq)
			}
		})
		t.Run(mode+"/a success whose record failed does not lift the hold", func(t *testing.T) {
			f := newCountedFixture(t, mode)
			for range 3 {
				f.want(t, countedReport("mallory", pdp.StepUpFailed), true, nil, nil)
			}
			seq := f.feed.Seq()
			f.breakTrail(t, mode)
			isDenied(t, f.decide(t, countedReport("mallory", pdp.StepUpSucceeded)))
			if f.feed.Seq() != seq {
				t.Fatal("a lift no record made was published to the sidecars")
			}
			f.mendTrail(t)
			f.want(t, countedPay("mallory", ""), true, nil, withStepUp)
			f.want(t, countedReport("mallory", pdp.StepUpSucceeded), true, nil, nil)
			f.want(t, countedPay("mallory", ""), true, nil, nil)
			if f.feed.Seq() != seq+1 {
				t.Fatalf("the recorded lift published %d changes, want 1", f.feed.Seq()-seq)
			}
		})
		t.Run(mode+"/denials whose records failed do not count towards a velocity block", func(t *testing.T) {
			f := newCountedFixture(t, mode)
			const ip = "203.0.113.9"
			f.breakTrail(t, mode)
			for _, u := range []string{"u1", "u2", "u3"} {
				isDenied(t, f.decide(t, countedLogin(u, ip)))
			}
			f.mendTrail(t)
			f.want(t, countedPay("erin", ip), true, nil, nil)
			for _, u := range []string{"u1", "u2", "u3"} {
				f.want(t, countedLogin(u, ip), false, []string{"not_permitted"}, nil)
			}
			f.want(t, countedPay("erin", ip), false, []string{"risk_velocity"}, nil)
		})
	}
	t.Run("sync/a batch whose records failed counts nothing; recorded, it counts like single reports", func(t *testing.T) {
		f := newCountedFixture(t, ModeSync)
		seq := f.feed.Seq()
		fail := countedReport("mallory", pdp.StepUpFailed)
		batch := []pdp.Request{fail, fail, fail, countedPay("mallory", "")}
		f.breakTrail(t, ModeSync)
		ds, err := f.r.DecideBatch(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			isDenied(t, d)
		}
		f.mendTrail(t)
		f.want(t, countedPay("mallory", ""), true, nil, nil)
		if ds, err = f.r.DecideBatch(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		if !ds[2].Allowed || ds[2].Signals[0].Count != 3 || !slices.Equal(ds[3].Obligations, withStepUp) {
			t.Fatalf("recorded batch: %+v / %+v", ds[2].Signals, ds[3])
		}
		// Two: the hold the failed batch's third report had begun was seen
		// by the decisions of its time (and perhaps cached by sidecars), so
		// its drop is published too; then the recorded batch's hold.
		if f.feed.Seq() != seq+2 {
			t.Fatalf("published %d changes, want 2", f.feed.Seq()-seq)
		}
	})
}

// TestBatchAfterAnUnrecordedLift: in a batch, a payment after a reported
// success was answered with the hold lifted; when the success's own
// record cannot be written (here: its context cannot be encoded), the
// payment is not recorded as allowed either, and the hold stays.
func TestBatchAfterAnUnrecordedLift(t *testing.T) {
	f := newCountedFixture(t, ModeSync)
	for range 3 {
		f.want(t, countedReport("mallory", pdp.StepUpFailed), true, nil, nil)
	}
	lift := countedReport("mallory", pdp.StepUpSucceeded)
	lift.Context["score"] = math.NaN() // no JSON for it: this record alone fails
	ds, err := f.r.DecideBatch(context.Background(), []pdp.Request{lift, countedPay("mallory", ""), countedPay("bob", "")})
	if err != nil {
		t.Fatal(err)
	}
	isDenied(t, ds[0])
	isDenied(t, ds[1]) // answered under the lift no record explains
	isDenied(t, ds[2]) // later in the batch than the failed lift: cut too
	f.want(t, countedPay("mallory", ""), true, nil, withStepUp)
}

// TestCountersConcurrentReports: failed step-ups reported at once, each
// recorded in a real file trail (sync, whose group commit writes them
// together), are counted as when they were counted one after the other:
// the records count 1, 2, 3, then 1, 2, 3 again (the third began the
// hold and cleared the window), the hold is published (at most twice),
// and it holds.
func TestCountersConcurrentReports(t *testing.T) {
	for round := range 10 {
		f := &countedFixture{}
		f.r = f.recorder(t, openLog(t, t.TempDir(), trail.FileOptions{}), ModeSync)
		seq := f.feed.Seq()
		counts := make([]int, 6)
		var wg sync.WaitGroup
		for i := range counts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := f.r.Decide(context.Background(), countedReport("mallory", pdp.StepUpFailed))
				if err != nil || !d.Allowed {
					t.Errorf("report: %v %+v", err, d)
					return
				}
				counts[i] = d.Signals[0].Count
			}()
		}
		wg.Wait()
		slices.Sort(counts)
		if !slices.Equal(counts, []int{1, 1, 2, 2, 3, 3}) {
			t.Fatalf("round %d: the records count %v, want 1 1 2 2 3 3", round, counts)
		}
		// Once when the report that began the hold is committed; again
		// when that commit was held back behind an earlier report and
		// the hold is made with the earlier one's (harmless).
		if n := f.feed.Seq() - seq; n < 1 || n > 2 {
			t.Fatalf("round %d: published %d changes, want 1 or 2", round, n)
		}
		f.want(t, countedPay("mallory", ""), true, nil, withStepUp)
	}
}
