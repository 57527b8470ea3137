package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ciampdp/pdp/pdp/changefeed"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
)

// newTestChanges is a feed past its start grace (no previous process).
func newTestChanges(lease time.Duration) *changefeed.Changes {
	return changefeed.NewChangesSince(lease, time.Now().Add(-time.Hour))
}

// feedEnv is a server with a change feed (and whatever else deps holds).
type feedEnv struct {
	t   *testing.T
	url string
	ch  *changefeed.Changes
	reg *prometheus.Registry
}

func newFeedEnv(t *testing.T, cfg Config, deps Deps) *feedEnv {
	t.Helper()
	if deps.Decider == nil {
		deps.Decider = &fakeDecider{}
	}
	deps.Policies, deps.Registry = loadedPolicies(), prometheus.NewRegistry()
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(checkedByContract(t, srv.Handler()))
	t.Cleanup(hs.Close)
	return &feedEnv{t: t, url: hs.URL, ch: deps.Changes, reg: deps.Registry}
}

// pollResult is a poll's answer and how long it took.
type pollResult struct {
	code int
	body string
	ans  changesAnswer
	took time.Duration
}

// poll sends GET /v1/changes with query as the sidecar id (no key).
func (e *feedEnv) poll(ctx context.Context, sidecar, key, query string) pollResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url+ChangesPath+"?"+query, nil)
	if err != nil {
		e.t.Error(err)
		return pollResult{}
	}
	if sidecar != "" {
		req.Header.Set(SidecarIDHeader, sidecar)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			e.t.Error(err)
		}
		return pollResult{}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := pollResult{code: res.StatusCode, body: string(b), took: time.Since(start)}
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &r.ans); err != nil {
			e.t.Errorf("poll answer %s: %v", b, err)
		}
	}
	return r
}

func TestChangesPollAnswers(t *testing.T) {
	e := newFeedEnv(t, Config{}, Deps{Changes: newTestChanges(2 * time.Second)})
	ctx := context.Background()
	epoch := e.ch.Epoch()

	r := e.poll(ctx, "sc-1", "", "after=0")
	if r.code != http.StatusOK || r.ans.Seq != 1 || r.ans.Epoch != epoch || r.ans.LeaseMS != 2000 || r.ans.PolicyVersion != "fakehash" {
		t.Fatalf("first poll: %d %s", r.code, r.body)
	}
	if r.took > 500*time.Millisecond {
		t.Errorf("a poll behind the seq took %v, want at once", r.took)
	}

	t.Run("held until wait passes, with no change", func(t *testing.T) {
		r := e.poll(ctx, "sc-1", "", "after=1&wait=300ms&epoch="+epoch)
		if r.code != http.StatusOK || r.ans.Seq != 1 {
			t.Fatalf("%d %s", r.code, r.body)
		}
		if r.took < 300*time.Millisecond || r.took > 2*time.Second {
			t.Errorf("took %v, want the wait of 300ms", r.took)
		}
	})
	t.Run("default wait is 1s", func(t *testing.T) {
		r := e.poll(ctx, "sc-1", "", "after=1")
		if r.took < time.Second || r.took > 3*time.Second {
			t.Errorf("took %v, want about 1s", r.took)
		}
	})
	t.Run("another epoch is answered at once", func(t *testing.T) {
		r := e.poll(ctx, "sc-1", "", "after=1&wait=5s&epoch=older")
		if r.code != http.StatusOK || r.ans.Epoch != epoch || r.took > time.Second {
			t.Fatalf("%d %s after %v", r.code, r.body, r.took)
		}
	})
	t.Run("a seq this epoch never had is answered at once", func(t *testing.T) {
		r := e.poll(ctx, "sc-1", "", "after=57&wait=5s")
		if r.code != http.StatusOK || r.ans.Seq != 1 || r.took > time.Second {
			t.Fatalf("%d %s after %v", r.code, r.body, r.took)
		}
	})

	t.Run("held, then woken by Publish", func(t *testing.T) {
		done := make(chan pollResult)
		go func() { done <- e.poll(ctx, "sc-2", "", "after=1&wait=10s&epoch="+epoch) }()
		waitFor(t, func() bool { return e.ch.Acked("", "sc-2") == 1 })
		time.Sleep(100 * time.Millisecond) // the poll is held
		published := make(chan time.Time)
		go func() {
			// sc-1 and sc-2 are live: Publish waits for their acks (below).
			if _, err := e.ch.Publish(ctx, "test"); err != nil {
				t.Error(err)
			}
			published <- time.Now()
		}()
		var r pollResult
		select {
		case r = <-done:
		case <-time.After(2 * time.Second):
			t.Fatal("the held poll was not woken by Publish")
		}
		if r.code != http.StatusOK || r.ans.Seq != 2 {
			t.Fatalf("woken poll: %d %s", r.code, r.body)
		}
		for _, sc := range []string{"sc-1", "sc-2"} {
			if r := e.poll(ctx, sc, "", "after=2&wait=0s&epoch="+epoch); r.ans.Seq != 2 {
				t.Fatalf("ack of %s: %d %s", sc, r.code, r.body)
			}
		}
		select {
		case <-published:
		case <-time.After(time.Second):
			t.Fatal("Publish did not return after both acks")
		}
	})
	t.Run("behind after a change: at once", func(t *testing.T) {
		r := e.poll(ctx, "sc-3", "", "after=1&wait=5s&epoch="+epoch)
		if r.ans.Seq != 2 || r.took > time.Second {
			t.Fatalf("%d %s after %v", r.code, r.body, r.took)
		}
	})
}

func TestChangesPollRequests(t *testing.T) {
	keyed := newFeedEnv(t, Config{APIKeys: map[string]string{digest("key-app"): "mobile-banking"}},
		Deps{Changes: newTestChanges(time.Second)})
	for _, tc := range []struct {
		name, sidecar, key, query string
		code                      int
		want                      string
	}{
		{"no key", "sc", "", "after=0", http.StatusUnauthorized, "API key"},
		{"a wrong key", "sc", "nope", "after=0", http.StatusUnauthorized, "API key"},
		{"no sidecar id", "", "key-app", "after=0", http.StatusBadRequest, SidecarIDHeader},
		{"a sidecar id too long", strings.Repeat("x", 201), "key-app", "after=0", http.StatusBadRequest, SidecarIDHeader},
		{"after not a number", "sc", "key-app", "after=one", http.StatusBadRequest, "after"},
		{"after negative", "sc", "key-app", "after=-1", http.StatusBadRequest, "after"},
		{"wait not a duration", "sc", "key-app", "after=0&wait=5", http.StatusBadRequest, "wait"},
		{"wait negative", "sc", "key-app", "after=0&wait=-1s", http.StatusBadRequest, "wait"},
		{"ok", "sc", "key-app", "after=0", http.StatusOK, `"seq":1`},
		{"no after is after=0", "sc", "key-app", "", http.StatusOK, `"seq":1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := keyed.poll(context.Background(), tc.sidecar, tc.key, tc.query)
			if r.code != tc.code || !strings.Contains(r.body, tc.want) {
				t.Fatalf("%d %s, want %d with %q", r.code, r.body, tc.code, tc.want)
			}
		})
	}
	// Sidecar ids are the application's: another application's sidecar
	// of the same id is another subscriber.
	if got := keyed.ch.Acked("mobile-banking", "sc"); got != 0 {
		t.Errorf("acked %d", got)
	}
}

// TestPublishWaitsForAck: Publish returns right after a live subscriber
// acknowledges, long before its lease runs out.
func TestPublishWaitsForAck(t *testing.T) {
	const lease = 5 * time.Second
	e := newFeedEnv(t, Config{}, Deps{Changes: newTestChanges(lease)})
	ctx := context.Background()
	e.poll(ctx, "sc", "", "after=1&wait=0s")
	e.ch.Asked("", "sc") // it forwarded an evaluation: it may cache the answer

	start := time.Now()
	returned := make(chan time.Time, 1)
	go func() {
		if _, err := e.ch.Publish(ctx, "test"); err != nil {
			t.Error(err)
		}
		returned <- time.Now()
	}()
	time.Sleep(400 * time.Millisecond) // the sidecar takes its time
	select {
	case <-returned:
		t.Fatal("Publish returned before the live subscriber acknowledged")
	default:
	}
	ackSent := time.Now()
	if r := e.poll(ctx, "sc", "", "after=2&wait=0s"); r.ans.Seq != 2 {
		t.Fatalf("ack: %d %s", r.code, r.body)
	}
	var at time.Time
	select {
	case at = <-returned:
	case <-time.After(lease):
		t.Fatal("Publish did not return after the ack")
	}
	if at.Before(ackSent) {
		t.Errorf("Publish returned before the ack was sent")
	}
	if d := at.Sub(ackSent); d > 300*time.Millisecond {
		t.Errorf("Publish returned %v after the ack, want right after", d)
	}
	if took := at.Sub(start); took > 2*time.Second {
		t.Errorf("Publish took %v: it waited for the lease, not the ack", took)
	}
	if n := metricValue(t, e.reg, "pdp_changes_lease_lapsed_total"); n != 0 {
		t.Errorf("lapsed = %v", n)
	}
}

// TestPublishWaitsForTheLeaseOfAVanishedSubscriber: a subscriber that stops
// polling is waited for until the lease of its last poll runs out, and not
// longer.
func TestPublishWaitsForTheLeaseOfAVanishedSubscriber(t *testing.T) {
	const lease = 600 * time.Millisecond
	e := newFeedEnv(t, Config{}, Deps{Changes: newTestChanges(lease)})
	ctx := context.Background()
	sent := time.Now()
	e.poll(ctx, "sc", "", "after=1&wait=0s")
	e.ch.Asked("", "sc")
	time.Sleep(100 * time.Millisecond)

	if _, err := e.ch.Publish(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	if at.Before(sent.Add(lease)) {
		t.Errorf("Publish returned %v after the last poll was sent, before its lease of %v ran out", at.Sub(sent), lease)
	}
	if late := at.Sub(sent.Add(lease)); late > 400*time.Millisecond {
		t.Errorf("Publish returned %v after the lease ran out", late)
	}
	if n := metricValue(t, e.reg, "pdp_changes_lease_lapsed_total"); n != 1 {
		t.Errorf("lapsed = %v, want 1", n)
	}

	// Polls after the change do not extend the wait: a sidecar that keeps
	// polling without acknowledging is waited for only until the lease of
	// its last poll before the change.
	e.poll(ctx, "sc", "", "after=2&wait=0s")
	e.ch.Asked("", "sc")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				e.poll(ctx, "sc", "", "after=2&wait=0s") // never acknowledges 3
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
	start := time.Now()
	if _, err := e.ch.Publish(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if took := time.Since(start); took > lease+400*time.Millisecond {
		t.Errorf("Publish took %v with a subscriber that polls without acknowledging, want at most the lease %v", took, lease)
	}
}

func TestPublishSkipsExpiredSubscribers(t *testing.T) {
	const lease = 200 * time.Millisecond
	e := newFeedEnv(t, Config{}, Deps{Changes: newTestChanges(lease)})
	ctx := context.Background()
	e.poll(ctx, "sc", "", "after=1&wait=0s")
	time.Sleep(lease + 100*time.Millisecond)
	start := time.Now()
	if _, err := e.ch.Publish(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 250*time.Millisecond {
		t.Errorf("Publish took %v with only an expired subscriber, want at once", took)
	}
	if n := metricValue(t, e.reg, "pdp_changes_lease_lapsed_total"); n != 0 {
		t.Errorf("lapsed = %v: an expired subscriber was waited for", n)
	}
	if n := metricValue(t, e.reg, "pdp_changes_subscribers"); n != 0 {
		t.Errorf("subscribers = %v, want 0 live", n)
	}
}

func TestPublishEndsWithItsContext(t *testing.T) {
	e := newFeedEnv(t, Config{}, Deps{Changes: newTestChanges(10 * time.Second)})
	e.poll(context.Background(), "sc", "", "after=1&wait=0s")
	e.ch.Asked("", "sc")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	seq, err := e.ch.Publish(ctx, "test")
	if err == nil || !strings.Contains(err.Error(), "1 sidecars had not acknowledged") || seq != 2 {
		t.Fatalf("Publish = %d, %v", seq, err)
	}
	if e.ch.Seq() != 2 {
		t.Errorf("seq %d: the change counts even when not acknowledged", e.ch.Seq())
	}
}

// TestPublishWaitsOutTheStartGrace: a new process does not know the
// sidecars the previous one granted leases to.
func TestPublishWaitsOutTheStartGrace(t *testing.T) {
	const lease = 300 * time.Millisecond
	ch := changefeed.NewChanges(lease)
	start := time.Now()
	if _, err := ch.Publish(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < lease-50*time.Millisecond {
		t.Errorf("Publish right after start took %v, want the lease %v", took, lease)
	}
	start = time.Now()
	if _, err := ch.Publish(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 250*time.Millisecond {
		t.Errorf("Publish after the grace took %v", took)
	}
}

func TestChangesCloseAnswersHeldPolls(t *testing.T) {
	e := newFeedEnv(t, Config{}, Deps{Changes: newTestChanges(time.Second)})
	done := make(chan pollResult)
	go func() { done <- e.poll(context.Background(), "sc", "", "after=1&wait=10s") }()
	waitFor(t, func() bool { return e.ch.Acked("", "sc") == 1 })
	e.ch.Close()
	select {
	case r := <-done:
		if r.code != http.StatusOK || r.ans.Seq != 1 {
			t.Fatalf("%d %s", r.code, r.body)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not answer the held poll")
	}
	if r := e.poll(context.Background(), "sc", "", "after=1&wait=10s"); r.took > time.Second {
		t.Errorf("a poll after Close was held %v", r.took)
	}
}

// TestDelegationRevokeWaitsForSidecarAck: a revoke through the real HTTP
// API (real delegation service, file store) is answered only once a polling
// sidecar has acknowledged it.
func TestDelegationRevokeWaitsForSidecarAck(t *testing.T) {
	st, err := delegation.OpenFile(filepath.Join(t.TempDir(), "d.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	const lease = 10 * time.Second
	ch := newTestChanges(lease)
	e := newFeedEnv(t, Config{APIKeys: map[string]string{digest("key-app"): "mobile-banking"},
		DelegationAdmins: map[string]bool{"mobile-banking": true}},
		Deps{Changes: ch, Delegations: delegation.NewService(delegation.Config{Store: st, Publisher: ch})})

	// The sidecar: long-polls; on a new seq it takes clearDelay to drop its
	// cache, then acknowledges with its next poll.
	const clearDelay = 300 * time.Millisecond
	var (
		mu   sync.Mutex
		acks = map[uint64]time.Time{} // seq → when its acknowledging poll was sent
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		var applied uint64
		epoch := ""
		for ctx.Err() == nil {
			mu.Lock()
			if _, ok := acks[applied]; !ok {
				acks[applied] = time.Now()
			}
			mu.Unlock()
			r := e.poll(ctx, "sidecar-1", "key-app", fmt.Sprintf("after=%d&epoch=%s&wait=10s", applied, epoch))
			if r.code != http.StatusOK {
				if ctx.Err() == nil {
					t.Errorf("poll: %d %s", r.code, r.body)
				}
				return
			}
			if r.ans.Seq != applied || r.ans.Epoch != epoch {
				time.Sleep(clearDelay)
				applied, epoch = r.ans.Seq, r.ans.Epoch
			}
		}
	})
	waitFor(t, func() bool { return e.ch.Acked("mobile-banking", "sidecar-1") == 1 })

	send := func(path, body string) (int, string, time.Time) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer key-app")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), time.Now()
	}
	poa := `{"actor":{"type":"user","id":"alice"},"principal":{"type":"user","id":"alice"},"agent":{"type":"user","id":"bob"},
		"basis":"power_of_attorney","source":"self_declared","scope":["view_statements"],"valid_until":"2041-01-01T00:00:00Z"}`
	code, body, _ := send(DelegationsPath, poa)
	var d delegation.Delegation
	if err := json.Unmarshal([]byte(body), &struct{ Delegation *delegation.Delegation }{&d}); code != http.StatusCreated || err != nil {
		t.Fatalf("offer: %d %s", code, body)
	}
	// The sidecar acknowledged the offer, then forwarded an evaluation: it
	// may cache the answer, so the revoke waits for it.
	waitFor(t, func() bool { return e.ch.Acked("mobile-banking", "sidecar-1") == 2 })
	e.ch.Asked("mobile-banking", "sidecar-1")
	start := time.Now()
	code, body, answered := send(DelegationsPath+"/"+d.ID+"/revoke", `{"actor":{"type":"user","id":"alice"}}`)
	if code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if seq := e.ch.Seq(); seq != 3 {
		t.Fatalf("seq %d after an offer and a revoke, want 3", seq)
	}
	mu.Lock()
	acked, ok := acks[3]
	mu.Unlock()
	if !ok || acked.After(answered) {
		t.Fatalf("the revoke was answered (%v) before the sidecar acknowledged it (%v, %v)", answered, acked, ok)
	}
	if took := answered.Sub(start); took < clearDelay || took > lease/2 {
		t.Errorf("the revoke took %v: want the sidecar's %v to clear its cache, not its lease %v", took, clearDelay, lease)
	}
	// A change that is refused is not published.
	if code, body, _ := send(DelegationsPath+"/no-such-id/revoke", `{"actor":{"type":"user","id":"alice"}}`); code != http.StatusNotFound {
		t.Fatalf("revoke of an unknown delegation: %d %s", code, body)
	}
	if seq := e.ch.Seq(); seq != 3 {
		t.Errorf("seq %d after a refused change, want 3", seq)
	}
}

// metricValue is the value of an unlabelled counter or gauge in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fakeConsents answers the consent changes (and fails them with fail),
// publishing those it applies to pub as the ledger does.
type fakeConsents struct {
	Consents // the reads are not used
	pub      *changefeed.Changes
	fail     error
}

func (f *fakeConsents) done(ctx context.Context) error {
	if f.fail == nil {
		_, _ = f.pub.Publish(ctx, "test")
	}
	return f.fail
}

// fakeEvent is an event as the ledger would answer it (the OpenAPI
// document checks the answers).
func fakeEvent(typ consent.EventType, subject consent.Ref) consent.Event {
	return consent.Event{ID: "ev-1", Position: 1, Type: typ, Subject: subject, Actor: subject, Purpose: "p", At: time.Unix(1, 0), RecordedAt: time.Unix(1, 0)}
}

func (f *fakeConsents) Give(ctx context.Context, r consent.ChoiceRequest) (consent.Event, string, error) {
	return fakeEvent(consent.EventGiven, r.Subject), "receipt", f.done(ctx)
}

func (f *fakeConsents) Refuse(ctx context.Context, r consent.ChoiceRequest) (consent.Event, string, error) {
	return f.Give(ctx, r)
}

func (f *fakeConsents) Withdraw(ctx context.Context, r consent.WithdrawRequest) ([]consent.Event, error) {
	return []consent.Event{fakeEvent(consent.EventWithdrawn, r.Subject)}, f.done(ctx)
}

func (f *fakeConsents) Renew(ctx context.Context, r consent.RenewRequest) (consent.Event, string, error) {
	return fakeEvent(consent.EventRenewed, r.Subject), "receipt", f.done(ctx)
}

// TestConsentChangesArePublished: the handlers publish nothing themselves
// (the ledger does: pdp/consent's TestLedgerPublishesEveryChange): a
// change the service published once moves seq by one.
func TestConsentChangesArePublished(t *testing.T) {
	ch := newTestChanges(time.Second)
	fc := &fakeConsents{pub: ch}
	e := newFeedEnv(t, Config{}, Deps{Changes: ch, Consents: fc})
	choice := `{"subject":{"type":"user","id":"alice"},"purpose":"marketing","jurisdiction":"EU"}`
	send := func(op, body string) int {
		t.Helper()
		res, err := http.Post(e.url+ConsentsPath+"/"+op, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		return res.StatusCode
	}
	ops := []struct{ op, body string }{
		{"give", choice}, {"refuse", choice},
		{"withdraw", `{"subject":{"type":"user","id":"alice"},"purpose":"marketing"}`},
		{"renew", `{"subject":{"type":"user","id":"alice"},"grant_id":"g1"}`},
	}
	for i, o := range ops {
		if code := send(o.op, o.body); code >= 300 {
			t.Fatalf("%s: %d", o.op, code)
		}
		if got := e.ch.Seq(); got != uint64(i+2) {
			t.Fatalf("after %s: seq %d, want %d", o.op, got, i+2)
		}
	}
	fc.fail = consent.ErrConflict
	for _, o := range ops {
		if code := send(o.op, o.body); code != http.StatusConflict {
			t.Fatalf("%s failing: %d", o.op, code)
		}
	}
	if got := e.ch.Seq(); got != uint64(len(ops)+1) {
		t.Errorf("failed changes were published: seq %d", got)
	}
}

// TestPublishWaitsOnlyForSubscribersThatMayHoldAnswers (B8): subscribers
// that never forwarded an evaluation, or acknowledged every change since
// their last one, are not waited for; one that asked after the seq it
// acknowledged was told is.
func TestPublishWaitsOnlyForSubscribersThatMayHoldAnswers(t *testing.T) {
	const lease = 2 * time.Second
	e := newFeedEnv(t, Config{}, Deps{Changes: newTestChanges(lease)})
	ctx := context.Background()
	for i := range 50 { // polled once, never asked
		e.poll(ctx, fmt.Sprintf("idle-%d", i), "", "after=0&wait=0s")
	}
	first := e.poll(ctx, "busy", "", "after=0&wait=0s")
	e.poll(ctx, "busy", "", fmt.Sprintf("after=%d&epoch=%s&wait=0s", first.ans.Seq, first.ans.Epoch))
	e.ch.Asked("", "busy")
	e.ch.Asked("", "never-polled") // unknown: ignored

	start := time.Now()
	p, err := e.ch.PublishReport(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took < lease-300*time.Millisecond {
		t.Errorf("Publish took %v: it did not wait for the subscriber that may hold an answer", took)
	}
	if len(p.Unacknowledged) != 1 || p.Unacknowledged[0].ID != "busy" {
		t.Errorf("unacknowledged %v, want only busy", p.Unacknowledged)
	}

	// busy acknowledges the change and asks nothing more: the next change
	// does not wait at all.
	if r := e.poll(ctx, "busy", "", fmt.Sprintf("after=%d&epoch=%s&wait=0s", first.ans.Seq, first.ans.Epoch)); r.ans.Seq != p.Seq {
		t.Fatalf("busy learns of the change: %+v", r)
	}
	e.poll(ctx, "busy", "", fmt.Sprintf("after=%d&epoch=%s&wait=0s", p.Seq, first.ans.Epoch))
	start = time.Now()
	if p, err = e.ch.PublishReport(ctx, "test"); err != nil || len(p.Unacknowledged) != 0 {
		t.Fatalf("second change: %+v %v", p, err)
	}
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Errorf("the second change took %v, want at once: nobody holds an answer", took)
	}
}
