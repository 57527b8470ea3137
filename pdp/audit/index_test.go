package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// trailOf appends the records of src n times to a fresh log, each copy's
// record ids made unique: a trail of realistic Northbank decisions of any
// size in which every id names one record.
func trailOf(t testing.TB, src *trail.FileLog, n int) *trail.FileLog {
	t.Helper()
	l, err := trail.OpenFile(t.TempDir(), trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	var recs []trail.Record
	if err := src.Scan(0, src.Size(), func(r trail.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		batch := slices.Clone(recs)
		for j := range batch {
			batch[j].ID = fmt.Sprintf("%s-%d", batch[j].ID, i)
		}
		if _, err := l.Append(context.Background(), batch...); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// filtersOf are filters of every field, alone and combined, drawn from
// the trail's own entries (so that each matches something).
func filtersOf(t *testing.T, l Source) []Filter {
	t.Helper()
	all, err := Query(context.Background(), l, Filter{}, 1<<30)
	if err != nil || len(all.Entries) < 10 {
		t.Fatalf("%v: %d entries", err, len(all.Entries))
	}
	var delegated, consented bool
	for _, e := range all.Entries {
		delegated, consented = delegated || len(e.Delegations) > 0, consented || e.ConsentGrant != ""
	}
	if !delegated || !consented {
		t.Fatalf("the trail has no decision relying on a delegation (%v) or a consent grant (%v)", delegated, consented)
	}
	fs := []Filter{{}, {Result: "allow"}, {Result: "deny"}, {Subject: "user:nobody"}, {Reason: "no_such_reason"},
		{Subject: "user:sc-bob"}, {Subject: "user:sc-bob", Result: "deny"}, {Application: "sc-app"}, {OnBehalfOf: "user:sc-alice"}}
	for _, e := range []Entry{all.Entries[0], all.Entries[len(all.Entries)/2], all.Entries[len(all.Entries)-1]} {
		fs = append(fs, Filter{Subject: e.Subject}, Filter{Resource: e.Resource}, Filter{Action: e.Action},
			Filter{Application: e.Application}, Filter{Subject: e.Subject, Action: e.Action, Result: map[bool]string{true: "allow", false: "deny"}[e.Allowed]},
			Filter{Since: e.Time}, Filter{Until: e.Time}, Filter{Since: e.Time.Add(-time.Millisecond), Until: e.Time.Add(time.Millisecond)})
		if e.OnBehalfOf != "" {
			fs = append(fs, Filter{OnBehalfOf: e.OnBehalfOf})
		}
	}
	seen := map[string]bool{}
	for _, e := range all.Entries {
		for _, d := range e.Delegations {
			if !seen[d] {
				seen[d] = true
				fs = append(fs, Filter{Delegation: d}, Filter{Delegation: d, Result: "allow"})
			}
		}
		if g := e.ConsentGrant; g != "" && !seen[g] {
			seen[g] = true
			fs = append(fs, Filter{ConsentGrant: g})
		}
	}
	for _, e := range []Entry{all.Entries[0], all.Entries[len(all.Entries)/2], all.Entries[len(all.Entries)-1]} {
		for _, r := range e.Reasons {
			fs = append(fs, Filter{Reason: r}, Filter{Reason: r, Subject: e.Subject})
		}
	}
	return fs
}

// TestIndexAnswersAsTheScan: for every filter, the index lists the same
// decisions as a scan of the trail, in both orders and on every page, and
// it catches up with records appended after it was built.
func TestIndexAnswersAsTheScan(t *testing.T) {
	ctx := context.Background()
	rc := record(t)
	l := trailOf(t, rc.log, 3)
	x := NewIndex()
	for round := range 2 {
		if round == 1 {
			// Records appended after the index was built.
			more := trailOf(t, rc.log, 1)
			var recs []trail.Record
			_ = more.Scan(0, more.Size(), func(r trail.Record) error { r.ID += "-late"; recs = append(recs, r); return nil })
			recs = append(recs, sidecarRecords(t, 3)...)
			if _, err := l.Append(ctx, recs...); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range filtersOf(t, l) {
			want, err := Query(ctx, l, f, 7)
			if err != nil {
				t.Fatal(err)
			}
			got, err := x.Query(ctx, l, f, 7)
			if err != nil {
				t.Fatal(err)
			}
			if got.Matched != want.Matched || got.Scanned != want.Scanned || got.Truncated != want.Truncated || !slices.EqualFunc(got.Entries, want.Entries, sameEntry) {
				t.Fatalf("round %d, filter %+v: index %d/%d %v, scan %d/%d %v", round, f, got.Matched, got.Scanned, seqs(got.Entries), want.Matched, want.Scanned, seqs(want.Entries))
			}
			// Newest first, page by page, as the console reads them.
			var before uint64
			for page := 0; ; page++ {
				gp, err := x.Page(ctx, l, f, before, 5)
				if err != nil {
					t.Fatal(err)
				}
				wp, err := scanPage(ctx, l, f, before, 5)
				if err != nil {
					t.Fatal(err)
				}
				if gp.Matched != wp.Matched || gp.Truncated != wp.Truncated || !slices.EqualFunc(gp.Entries, wp.Entries, sameEntry) {
					t.Fatalf("filter %+v page %d: index %v, scan %v", f, page, seqs(gp.Entries), seqs(wp.Entries))
				}
				if !gp.Truncated || page > 3 {
					break
				}
				before = gp.Entries[len(gp.Entries)-1].Seq
			}
		}
	}
}

func sameEntry(a, b Entry) bool { return a.Seq == b.Seq && a.DecisionID == b.DecisionID }

func seqs(es []Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

// TestServiceExplainsThroughTheIndex: Explain finds every decision by its
// record id through the index as through a scan, and an unknown id is
// ErrNoSuchDecision.
func TestServiceExplainsThroughTheIndex(t *testing.T) {
	ctx := context.Background()
	rc := record(t)
	l := trailOf(t, rc.log, 2)
	scan, indexed := Service{Trail: l, Archive: rc.archive}, Service{Trail: l, Archive: rc.archive, Index: NewIndex()}
	n := 0
	if err := l.Scan(0, l.Size(), func(r trail.Record) error {
		if r.Kind != recorder.KindDecision || r.Seq%17 != 0 {
			return nil
		}
		n++
		a, err := scan.Explain(ctx, r.ID)
		if err != nil {
			return err
		}
		b, err := indexed.Explain(ctx, r.ID)
		if err != nil {
			return err
		}
		if a.Seq != b.Seq || a.Seq != r.Seq || !slices.Equal(a.Words, b.Words) {
			return fmt.Errorf("record %d: scan found %d, index %d", r.Seq, a.Seq, b.Seq)
		}
		return nil
	}); err != nil || n == 0 {
		t.Fatalf("%v (%d explained)", err, n)
	}
	if _, err := indexed.Explain(ctx, "no-such-id"); !errors.Is(err, ErrNoSuchDecision) {
		t.Fatalf("unknown id: %v", err)
	}
}

func TestPerMinuteFromTheIndexAsFromTheScan(t *testing.T) {
	ctx := context.Background()
	rc := record(t)
	l := trailOf(t, rc.log, 2)
	var first time.Time
	_ = l.Scan(0, 1, func(r trail.Record) error { first = r.Time; return nil })
	start := first.Truncate(time.Minute).Add(-time.Minute)
	want, err := Service{Trail: l}.PerMinute(ctx, start, 30)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Service{Trail: l, Index: NewIndex()}.PerMinute(ctx, start, 30)
	total := 0
	for _, n := range want {
		total += n
	}
	if err != nil || !slices.Equal(got, want) || total == 0 {
		t.Fatalf("index %v (%v), scan %v", got, err, want)
	}
}

// TestIndexOfRedactedRecords: with values stored redacted (a hashed
// subject id, an encrypted on-behalf-of), the index still lists what the
// scan lists.
func TestIndexOfRedactedRecords(t *testing.T) {
	ctx := context.Background()
	_, recipient, err := trail.NewAuditorIdentity()
	if err != nil {
		t.Fatal(err)
	}
	red, err := trail.NewRedactor([]trail.RedactionRule{
		{Path: "request.subject.id", Method: trail.RedactHash},
		{Path: "request.context.on_behalf_of", Method: trail.RedactEncrypt},
	}, []byte("0123456789abcdef0123456789abcdef"), []string{recipient})
	if err != nil {
		t.Fatal(err)
	}
	l := recordRedacted(t, red).log
	x := NewIndex()
	for _, f := range filtersOf(t, l) {
		want, err := Query(ctx, l, f, 1000)
		if err != nil {
			t.Fatal(err)
		}
		got, err := x.Query(ctx, l, f, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if got.Matched != want.Matched || !slices.EqualFunc(got.Entries, want.Entries, sameEntry) {
			t.Fatalf("filter %+v: index %d %v, scan %d %v", f, got.Matched, seqs(got.Entries), want.Matched, seqs(want.Entries))
		}
	}
}

// sidecarRecords are n answers a sidecar gave itself, as ingested: bob
// for alice, every other one denied.
func sidecarRecords(t *testing.T, n int) []trail.Record {
	t.Helper()
	var out []trail.Record
	for i := range n {
		id := fmt.Sprintf("sc-decision-%d", i)
		ans := fmt.Sprintf(`{"decision_id":%q,"time":"2026-03-01T10:00:0%dZ","sidecar":"sc1","decision":%v,"reasons":[],"source":"cache",`+
			`"request":{"subject":{"type":"user","id":"sc-bob"},"action":{"name":"make_payment"},"resource":{"type":"account","id":"acc-sc"},`+
			`"context":{"on_behalf_of":{"type":"user","id":"sc-alice"}}}}`, id, i, i%2 == 0)
		body, err := json.Marshal(trail.SidecarBody{Sidecar: "sc1", Application: "sc-app", SpoolSeq: uint64(i + 1), Record: json.RawMessage(ans)})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, trail.Record{Kind: trail.KindSidecar, ID: id, Time: time.Date(2026, 3, 1, 10, 0, i, 0, time.UTC), Body: body})
	}
	return out
}

func TestSidecarAnswersAreListed(t *testing.T) {
	ctx := context.Background()
	l, err := trail.OpenFile(t.TempDir(), trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(ctx, sidecarRecords(t, 4)...); err != nil {
		t.Fatal(err)
	}
	for name, svc := range map[string]Service{"scan": {Trail: l}, "index": {Trail: l, Index: NewIndex()}} {
		res, err := svc.QueryPage(ctx, Filter{Subject: "user:sc-bob", OnBehalfOf: "user:sc-alice", Result: "allow"}, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if res.Matched != 2 || len(res.Entries) != 2 || res.Entries[0].Sidecar != "sc1" || res.Entries[0].Application != "sc-app" ||
			res.Entries[0].DecisionID != "sc-decision-2" || res.Entries[0].Action != "make_payment" {
			t.Errorf("%s: %+v", name, res)
		}
	}
}

// TestIndexUnderConcurrentReadsAndAppends: readers catch the index up and
// read it while records are appended (run with -race).
func TestIndexUnderConcurrentReadsAndAppends(t *testing.T) {
	ctx := context.Background()
	l, err := trail.OpenFile(t.TempDir(), trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	svc := Service{Trail: l, Index: NewIndex()}
	done := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				if _, err := svc.QueryPage(ctx, Filter{Subject: "user:sc-bob"}, 0, 5); err != nil {
					errs <- err
					return
				}
				if _, err := svc.PerMinute(ctx, time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), 5); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range 50 {
		recs := sidecarRecords(t, 2)
		for j := range recs {
			recs[j].ID = fmt.Sprintf("%s-%d", recs[j].ID, i)
		}
		if _, err := l.Append(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	res, err := svc.QueryPage(ctx, Filter{Subject: "user:sc-bob"}, 0, 5)
	if err != nil || res.Matched != 100 {
		t.Fatalf("%v: %d matched, want 100", err, res.Matched)
	}
}
