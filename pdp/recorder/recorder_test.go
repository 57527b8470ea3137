package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/trail"
)

type fixedBundle struct{ b *policy.Bundle }

func (f fixedBundle) Current() *policy.Bundle { return f.b }

// todoEngine is the real engine over the todo example.
func todoEngine(t testing.TB) *pdp.Engine {
	t.Helper()
	b, err := policy.Load(context.Background(), policy.DirsFor("../../examples/authzen-todo"))
	if err != nil {
		t.Fatal(err)
	}
	return pdp.NewEngine(pdp.Components{Bundles: fixedBundle{b}})
}

const rick = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

func readTodos(id string) pdp.Request {
	return pdp.Request{
		Subject:     pdp.Entity{Type: "user", ID: rick},
		Action:      pdp.Action{Name: "can_read_todos"},
		Resource:    pdp.Entity{Type: "todo", ID: id},
		Application: "todo-app",
	}
}

func TestRecorderSyncRecordsEveryDecision(t *testing.T) {
	s, vkey := newKeys(t)
	l := openLog(t, t.TempDir(), trail.FileOptions{Signer: s})
	r, err := NewRecorder(todoEngine(t), l, RecorderOptions{Instance: "pdp-1", Build: "v-test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := r.Decide(ctx, readTodos("t1"))
	if err != nil || !d.Allowed {
		t.Fatalf("decide: %v %+v", err, d)
	}
	ds, err := r.DecideBatch(ctx, []pdp.Request{readTodos("t2"), readTodos("t3"), readTodos("t4")})
	if err != nil || len(ds) != 3 {
		t.Fatalf("batch: %v %d", err, len(ds))
	}
	want := []string{d.ID, ds[0].ID, ds[1].ID, ds[2].ID}
	var got []string
	err = l.Scan(0, 100, func(rec trail.Record) error {
		got = append(got, rec.ID)
		var body struct {
			Decision pdp.Decision `json:"decision"`
			Request  pdp.Request  `json:"request"`
			Instance string       `json:"instance"`
			Build    string       `json:"build"`
		}
		if err := json.Unmarshal(rec.Body, &body); err != nil {
			return err
		}
		if rec.Kind != KindDecision || body.Decision.ID != rec.ID || !body.Decision.Allowed ||
			body.Decision.Application != "todo-app" || body.Request.Action.Name != "can_read_todos" ||
			body.Instance != "pdp-1" || body.Build != "v-test" || !rec.Time.Equal(body.Decision.Time) {
			t.Errorf("record %d: %s", rec.Seq, rec.Body)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("trail holds %v, want %v", got, want)
	}
	if st := r.Stats(); st.Written != 4 || st.Denied != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, l.dir, trail.FileOptions{})
	if rep, err := l2.Verify(ctx, vkey, 0, 100); err != nil || !rep.OK || rep.Anchored != 4 {
		t.Fatalf("verify: %v %v", rep, err)
	}
}

func TestRecorderSyncFailureDenies(t *testing.T) {
	l := openLog(t, t.TempDir(), trail.FileOptions{})
	_ = l.Close() // every append now fails
	r, err := NewRecorder(todoEngine(t), l, RecorderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := r.Decide(ctx, readTodos("t1"))
	if err != nil {
		t.Fatal(err)
	}
	isDenied(t, d)
	ds, err := r.DecideBatch(ctx, []pdp.Request{readTodos("t2"), readTodos("t3")})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		isDenied(t, d)
	}
	if st := r.Stats(); st.Written != 0 || st.Denied != 3 || st.Failures != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func isDenied(t *testing.T, d pdp.Decision) {
	t.Helper()
	if d.Allowed || !slices.Equal(d.Reasons, []string{ReasonTrailUnavailable}) || d.ID == "" || d.Message == "" || len(d.Obligations) != 0 {
		t.Fatalf("want a trail_unavailable deny with its id, got %+v", d)
	}
}

// slowLog is the storage-edge fake: Append announces itself on started and
// waits for gate, so the async buffer fills up behind it.
type slowLog struct {
	started chan struct{}
	gate    chan struct{}
	err     error
	mu      sync.Mutex
	ids     []string
}

func newSlowLog() *slowLog {
	return &slowLog{started: make(chan struct{}, 1), gate: make(chan struct{})}
}

func (s *slowLog) Append(_ context.Context, recs ...trail.Record) ([]uint64, error) {
	select {
	case s.started <- struct{}{}:
	default:
	}
	<-s.gate
	if s.err != nil {
		return nil, s.err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seqs := make([]uint64, len(recs))
	for i, r := range recs {
		seqs[i] = uint64(len(s.ids))
		s.ids = append(s.ids, r.ID)
	}
	return seqs, nil
}

// fillAsync starts an async recorder with a buffer of 2 whose drainer is
// stuck in Append with one record, and fills the buffer.
func fillAsync(t *testing.T, whenFull string) (*Recorder, *slowLog, []string) {
	t.Helper()
	sl := newSlowLog()
	r, err := NewRecorder(todoEngine(t), sl, RecorderOptions{Mode: ModeAsync, Buffer: 2, WhenFull: whenFull})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	var ids []string
	for i := range 3 {
		d, err := r.Decide(context.Background(), readTodos("t"))
		if err != nil || !d.Allowed {
			t.Fatalf("decision %d: %v %+v", i, err, d)
		}
		ids = append(ids, d.ID)
		if i == 0 {
			<-sl.started // the drainer holds the first record
		}
	}
	return r, sl, ids
}

func TestRecorderAsyncWhenFullDeny(t *testing.T) {
	r, sl, ids := fillAsync(t, FullDeny)
	d, err := r.Decide(context.Background(), readTodos("t"))
	if err != nil {
		t.Fatal(err)
	}
	isDenied(t, d)
	close(sl.gate)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sl.ids, ids) {
		t.Fatalf("written %v, want %v", sl.ids, ids)
	}
	if st := r.Stats(); st.Written != 3 || st.Denied != 1 || st.Blocked != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRecorderAsyncWhenFullBlock(t *testing.T) {
	r, sl, ids := fillAsync(t, FullBlock)
	done := make(chan pdp.Decision, 1)
	go func() {
		d, _ := r.Decide(context.Background(), readTodos("t"))
		done <- d
	}()
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().Blocked == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the fourth decision did not block")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case d := <-done:
		t.Fatalf("answered while the buffer was full: %+v", d)
	case <-time.After(20 * time.Millisecond):
	}
	close(sl.gate)
	d := <-done
	if !d.Allowed {
		t.Fatalf("after room was made: %+v", d)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if want := append(ids, d.ID); !slices.Equal(sl.ids, want) {
		t.Fatalf("written %v, want %v", sl.ids, want)
	}
	if st := r.Stats(); st.Written != 4 || st.Blocked != 1 || st.Denied != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRecorderAsyncFailureDeniesLaterDecisions(t *testing.T) {
	sl := newSlowLog()
	sl.err = errors.New("disk on fire")
	close(sl.gate)
	r, err := NewRecorder(todoEngine(t), sl, RecorderOptions{Mode: ModeAsync, Buffer: 4})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := r.Decide(context.Background(), readTodos("t")); !d.Allowed {
		t.Fatalf("first: %+v", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().Failures == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the failure was not counted")
		}
		time.Sleep(time.Millisecond)
	}
	d, _ := r.Decide(context.Background(), readTodos("t"))
	isDenied(t, d)
	if err := r.Close(); err == nil {
		t.Fatal("Close hid the failure")
	}
}

func TestRecorderRecordsSearches(t *testing.T) {
	l := openLog(t, t.TempDir(), trail.FileOptions{})
	r, err := NewRecorder(todoEngine(t), l, RecorderOptions{Instance: "pdp-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := pdp.Request{Subject: pdp.Entity{Type: "user", ID: rick}, Resource: pdp.Entity{Type: "todo", ID: "t1", Properties: map[string]any{"ownerID": "rick@the-citadel.com"}}, Application: "todo-app"}
	actions, err := r.SearchActions(ctx, req)
	if err != nil || len(actions) == 0 {
		t.Fatalf("search: %v %v", err, actions)
	}
	rec, err := l.Get(0)
	if err != nil {
		t.Fatal(err)
	}
	var body SearchBody
	if err := json.Unmarshal(rec.Body, &body); err != nil || rec.Kind != KindSearch || body.Search != "action" ||
		!slices.Equal(body.Actions, actions) || body.Application != "todo-app" || body.Instance != "pdp-1" {
		t.Fatalf("search record %s %s: %v", rec.Kind, rec.Body, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SearchActions(ctx, req); !errors.Is(err, ErrRecordFailed) {
		t.Fatalf("search with the trail closed: %v, want ErrRecordFailed", err)
	}
}
