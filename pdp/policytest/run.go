package policytest

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/authzen"
)

// Report is the outcome of Run: one result per case and batch, in suite
// order.
type Report struct {
	Passed, Failed int
	Results        []CaseResult
}

// CaseResult is the outcome of one case or batch.
type CaseResult struct {
	File  string
	Line  int
	Suite string
	Name  string
	// Batch is true for a batch, false for a single evaluation.
	Batch  bool
	Passed bool
	// Expected and Got describe the expected and the actual outcome in one
	// line each.
	Expected string
	Got      string
	// Failures says what differed, one line per difference.
	Failures []string
	// Err is the error of the Decider, if it failed.
	Err error
	// Decisions are the decisions the Decider returned (after the batch
	// semantic was applied, for a batch).
	Decisions []pdp.Decision
}

// Run evaluates every case and batch of the suites with d. A case whose
// decision differs from its expectation, or whose Decider call fails, is a
// failure; Run itself never fails. Once ctx is done, the remaining cases
// fail with its error.
func Run(ctx context.Context, d pdp.Decider, suites []Suite) Report {
	var r Report
	for _, s := range suites {
		for _, c := range s.Cases {
			r.add(runCase(ctx, d, s, c))
		}
		for _, b := range s.Batches {
			r.add(runBatch(ctx, d, s, b))
		}
	}
	return r
}

func (r *Report) add(cr CaseResult) {
	if cr.Passed {
		r.Passed++
	} else {
		r.Failed++
	}
	r.Results = append(r.Results, cr)
}

func runCase(ctx context.Context, d pdp.Decider, s Suite, c Case) CaseResult {
	cr := CaseResult{File: s.File, Line: c.Line, Suite: s.Name, Name: c.Name, Expected: c.Expect.String()}
	if err := ctx.Err(); err != nil {
		cr.Err = err
		return cr
	}
	dec, err := d.Decide(ctx, c.Request)
	if err != nil {
		cr.Err = err
		return cr
	}
	cr.Decisions = []pdp.Decision{dec}
	cr.Got = describe(dec)
	cr.Failures = c.Expect.Check(dec)
	cr.Passed = len(cr.Failures) == 0
	return cr
}

func runBatch(ctx context.Context, d pdp.Decider, s Suite, b BatchCase) CaseResult {
	cr := CaseResult{File: s.File, Line: b.Line, Suite: s.Name, Name: b.Name, Batch: true, Expected: boolList(b.Expect)}
	if err := ctx.Err(); err != nil {
		cr.Err = err
		return cr
	}
	ds, err := d.DecideBatch(ctx, b.Eval.Requests)
	if err != nil {
		cr.Err = err
		return cr
	}
	ds = authzen.ApplySemantic(b.Eval.Semantic, ds)
	cr.Decisions = ds
	got := make([]bool, len(ds))
	for i, dec := range ds {
		got[i] = dec.Allowed
	}
	cr.Got = boolList(got)
	cr.Failures = CheckBatch(b.Expect, got)
	cr.Passed = len(cr.Failures) == 0
	return cr
}

// Check compares a decision with the expectation and returns one line per
// difference; none means the decision is as expected.
func (e Expect) Check(d pdp.Decision) []string {
	var out []string
	if d.Allowed != e.Decision {
		out = append(out, fmt.Sprintf("decision: expected %t, got %t", e.Decision, d.Allowed))
	}
	if e.Policies != nil && !sameSet(e.Policies, d.Policies) {
		out = append(out, fmt.Sprintf("policies: expected %s, got %s", list(e.Policies), list(d.Policies)))
	}
	var missing []string
	for _, want := range e.Reasons {
		if !slices.Contains(d.Reasons, want) {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		out = append(out, fmt.Sprintf("reasons: missing %s, got %s", list(missing), list(d.Reasons)))
	}
	if e.Obligations != nil && !sameSet(e.Obligations, d.Obligations) {
		out = append(out, fmt.Sprintf("obligations: expected %s, got %s", list(e.Obligations), list(d.Obligations)))
	}
	return out
}

// CheckBatch compares the decisions of a batch with the expected ones and
// returns one line per difference.
func CheckBatch(expect, got []bool) []string {
	var out []string
	if len(expect) != len(got) {
		out = append(out, fmt.Sprintf("expected %d decisions, got %d", len(expect), len(got)))
	}
	for i := range min(len(expect), len(got)) {
		if expect[i] != got[i] {
			out = append(out, fmt.Sprintf("evaluation %d: expected %t, got %t", i+1, expect[i], got[i]))
		}
	}
	return out
}

// String describes the expectation in one line.
func (e Expect) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "decision=%t", e.Decision)
	if e.Policies != nil {
		fmt.Fprintf(&b, " policies=%s", list(e.Policies))
	}
	if len(e.Reasons) > 0 {
		fmt.Fprintf(&b, " reasons⊇%s", list(e.Reasons))
	}
	if e.Obligations != nil {
		fmt.Fprintf(&b, " obligations=%s", list(e.Obligations))
	}
	return b.String()
}

// describe puts what a decision says about itself on one line.
func describe(d pdp.Decision) string {
	s := fmt.Sprintf("decision=%t policies=%s reasons=%s", d.Allowed, list(d.Policies), list(d.Reasons))
	if len(d.Obligations) > 0 {
		s += " obligations=" + list(d.Obligations)
	}
	return s
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func list(s []string) string { return "[" + strings.Join(s, ", ") + "]" }

func boolList(bs []bool) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = fmt.Sprint(b)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
