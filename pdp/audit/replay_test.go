package audit

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/policytest"
	"github.com/ciampdp/pdp/pdp/recorder"
	"github.com/ciampdp/pdp/pdp/trail"
)

// northbank is the example bundle every replay test records decisions of.
const northbank = "../../examples/northbank"

// proposedChange is a policy change the what-if tests propose: a cap on
// what a delegate may pay, and advisors no longer view portfolios.
const proposedChange = `
@id("delegate-payment-cap")
@reason("delegate_payment_cap")
forbid (principal is User, action == Action::"make_payment", resource is Account)
when { context.delegation.active && context has amount && context.amount.greaterThan(decimal("200.0")) };
`

// loadBundles returns the Northbank bundle and a copy changed by
// proposedChange, with "advisor-views-portfolio" removed.
func loadBundles(t testing.TB) (v1, v2 *policy.Bundle) {
	t.Helper()
	v1, err := policy.Load(context.Background(), policy.DirsFor(northbank))
	if err != nil {
		t.Fatal(err)
	}
	files := maps.Clone(v1.Sources())
	src := string(files["policies/northbank.cedar"])
	i := strings.Index(src, `@id("advisor-views-portfolio")`)
	j := strings.Index(src[i:], "};")
	if i < 0 || j < 0 {
		t.Fatal("the Northbank policies changed: update proposedChange")
	}
	files["policies/northbank.cedar"] = []byte(src[:i] + src[i+j+2:])
	files["policies/proposed.cedar"] = []byte(proposedChange)
	v2, err = policy.LoadFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	return v1, v2
}

// recorded is a trail holding the Northbank suites' decisions, recorded
// under v1 and again under v2, and what each version answers directly.
type recorded struct {
	log       *trail.FileLog
	archive   *DirArchive
	v1, v2    *policy.Bundle
	decisions int
	// flips are the ids of v1 records whose request v2 answers otherwise.
	flips map[string]bool
	v1IDs map[string]bool
}

// record runs every case and batch of the Northbank suites through a
// Recorder over v1, then through one over v2, and asks v2 directly what it
// would answer to each v1 request.
func record(t testing.TB) *recorded {
	t.Helper()
	return recordRedacted(t, nil)
}

// recordRedacted is record with red redacting every record.
func recordRedacted(t testing.TB, red *trail.Redactor) *recorded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v1, v2 := loadBundles(t)
	dir := t.TempDir()
	l, err := trail.OpenFile(filepath.Join(dir, "trail"), trail.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	ar, err := OpenDirArchive(filepath.Join(dir, "policies"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []*policy.Bundle{v1, v2} {
		if err := ar.Put(b); err != nil {
			t.Fatal(err)
		}
	}
	suites, err := policytest.LoadSuites(northbank)
	if err != nil {
		t.Fatal(err)
	}
	rc := &recorded{log: l, archive: ar, v1: v1, v2: v2, flips: map[string]bool{}, v1IDs: map[string]bool{}}
	for _, s := range suites {
		e1, close1, err := policytest.NewEngine(ctx, v1, s)
		if err != nil {
			t.Fatal(err)
		}
		e2, close2, err := policytest.NewEngine(ctx, v2, s)
		if err != nil {
			close1()
			t.Fatal(err)
		}
		r1, err := recorder.NewRecorder(e1, l, recorder.RecorderOptions{Instance: "test", Build: "test", Redactor: red})
		if err != nil {
			t.Fatal(err)
		}
		r2, err := recorder.NewRecorder(e2, l, recorder.RecorderOptions{Instance: "test", Build: "test", Redactor: red})
		if err != nil {
			t.Fatal(err)
		}
		var reqs []pdp.Request
		for _, c := range s.Cases {
			reqs = append(reqs, c.Request)
		}
		for _, bc := range s.Batches {
			reqs = append(reqs, bc.Eval.Requests...)
		}
		got1, err := r1.DecideBatch(ctx, reqs)
		if err != nil {
			t.Fatal(err)
		}
		direct2, err := e2.DecideBatch(ctx, reqs)
		if err != nil {
			t.Fatal(err)
		}
		for i := range reqs {
			rc.v1IDs[got1[i].ID] = true
			if got1[i].Allowed != direct2[i].Allowed {
				rc.flips[got1[i].ID] = true
			}
		}
		for _, req := range reqs { // single evaluations, under v2
			if _, err := r2.Decide(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		rc.decisions += 2 * len(reqs)
		close2()
		close1()
	}
	if len(rc.flips) == 0 {
		t.Fatal("the proposed change flips no Northbank decision: the what-if test would prove nothing")
	}
	return rc
}

func TestReplayReproducesATrailAcrossTwoPolicyVersions(t *testing.T) {
	rc := record(t)
	var progress []uint64
	rep, err := Replay(context.Background(), rc.log, rc.archive, ReplayOptions{
		Progress: func(done, total uint64) { progress = append(progress, done) }, ProgressEvery: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Reproduced != uint64(rc.decisions) || rep.Decisions != uint64(rc.decisions) {
		t.Fatalf("replay: %d decisions, %d reproduced, %d differ, %d not replayable (want all %d reproduced): %+v",
			rep.Decisions, rep.Reproduced, rep.Differs, rep.NotReplayable, rc.decisions, rep.Items)
	}
	if len(rep.Versions) != 2 || rep.Versions[rc.v1.Version().Hash] != uint64(rc.decisions/2) {
		t.Errorf("decisions per version = %v, want %d under each of 2", rep.Versions, rc.decisions/2)
	}
	if len(progress) == 0 || progress[len(progress)-1] != uint64(rc.decisions) {
		t.Errorf("progress calls %v, want a last one at %d", progress, rc.decisions)
	}
}

func TestWhatIfListsExactlyTheFlips(t *testing.T) {
	rc := record(t)
	rep, err := WhatIf(context.Background(), rc.log, rc.v2, ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range rep.Flips {
		got[f.DecisionID] = true
	}
	if !maps.Equal(got, rc.flips) {
		t.Fatalf("what-if flips %v, want exactly %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(rc.flips)))
	}
	if rep.NotReplayable != 0 || rep.Flipped() != uint64(len(rc.flips)) {
		t.Errorf("report: %+v", rep)
	}
	var inGroups uint64
	sawCap := false
	for _, g := range rep.Groups {
		inGroups += g.AllowToDeny + g.DenyToAllow
		if g.Action == "make_payment" && slices.Contains(g.Policies, "delegate-payment-cap") {
			sawCap = g.AllowToDeny > 0
		}
	}
	if inGroups != rep.Flipped() || !sawCap {
		t.Errorf("groups %+v: want every flip in a group, and make_payment allow→deny by delegate-payment-cap", rep.Groups)
	}
	// v2's own records replayed under v2 are unchanged.
	if rep.Unchanged+rep.OtherChanges+rep.Flipped() != rep.Decisions {
		t.Errorf("counts do not add up: %+v", rep)
	}
}

func TestReplayWithoutTheArchivedVersionIsNotReplayable(t *testing.T) {
	rc := record(t)
	empty, err := OpenDirArchive(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Replay(context.Background(), rc.log, empty, ReplayOptions{MaxItems: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.NotReplayable != rep.Decisions || len(rep.Items) != 3 || !rep.Truncated {
		t.Fatalf("got %+v", rep)
	}
	if !strings.Contains(rep.Items[0].Missing[0], "not in the archive") {
		t.Errorf("missing = %v", rep.Items[0].Missing)
	}
}

func TestArchiveRefusesAnAlteredVersion(t *testing.T) {
	v1, _ := loadBundles(t)
	dir := t.TempDir()
	ar, err := OpenDirArchive(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ar.Put(v1); err != nil {
		t.Fatal(err)
	}
	if err := ar.Put(v1); err != nil { // idempotent
		t.Fatal(err)
	}
	fresh, _ := OpenDirArchive(dir)
	b, err := fresh.Get(v1.Version().Hash)
	if err != nil || b.Version() != v1.Version() {
		t.Fatalf("Get = %v, %v; want version %v", b, err, v1.Version())
	}
	p := filepath.Join(dir, strings.TrimPrefix(v1.Version().Hash, "sha256:")+".json")
	data, _ := os.ReadFile(p)
	data = []byte(strings.Replace(string(data), "owner-views", "owner-peeks", 1))
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	fresh, _ = OpenDirArchive(dir)
	if _, err := fresh.Get(v1.Version().Hash); err == nil || !strings.Contains(err.Error(), "altered") {
		t.Fatalf("Get of an altered archive entry = %v, want an 'altered' error", err)
	}
	if _, err := fresh.Get("sha256:" + strings.Repeat("0", 64)); err == nil {
		t.Fatal("Get of an unknown version succeeded")
	}
}

// TestReplayOfRedactedRecords: a value redacted outside the input leaves
// replay alone; a hashed input value makes exactly the decisions holding
// it not_replayable (named by path); an encrypted one replays for the
// auditor holding the identity, and not without it.
func TestReplayOfRedactedRecords(t *testing.T) {
	identity, recipient, err := trail.NewAuditorIdentity()
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	for _, tc := range []struct {
		name       string
		rule       trail.RedactionRule
		identities []string
		hidden     bool // some decisions are not replayable
	}{
		{"outside the input", trail.RedactionRule{Path: "request.context.on_behalf_of", Method: trail.RedactEncrypt}, nil, false},
		{"hashed input", trail.RedactionRule{Path: "decision.input.context.amount", Method: trail.RedactHash}, nil, true},
		{"encrypted input, auditor's identity", trail.RedactionRule{Path: "decision.input.context.amount", Method: trail.RedactEncrypt}, []string{identity}, false},
		{"encrypted input, no identity", trail.RedactionRule{Path: "decision.input.context.amount", Method: trail.RedactEncrypt}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			red, err := trail.NewRedactor([]trail.RedactionRule{tc.rule}, key, []string{recipient})
			if err != nil {
				t.Fatal(err)
			}
			rc := recordRedacted(t, red)
			rep, err := Replay(context.Background(), rc.log, rc.archive, ReplayOptions{Reveal: RevealWith(tc.identities)})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Differs != 0 || rep.Decisions != uint64(rc.decisions) {
				t.Fatalf("replay: %+v", rep)
			}
			if !tc.hidden {
				if !rep.OK() {
					t.Fatalf("replay: %d not replayable: %+v", rep.NotReplayable, rep.Items)
				}
				return
			}
			if rep.NotReplayable == 0 || rep.Reproduced == 0 {
				t.Fatalf("want some decisions not replayable (those with an amount), the others reproduced: %+v", rep)
			}
			for _, it := range rep.Items {
				if it.Action != "make_payment" || len(it.Missing) != 1 || it.Missing[0] != "decision.input.context.amount" {
					t.Errorf("not replayable: %+v, want make_payment missing decision.input.context.amount", it)
				}
			}
		})
	}
}
