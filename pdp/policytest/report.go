package policytest

import (
	"bufio"
	"fmt"
	"io"

	"github.com/ciampdp/pdp/pdp"
)

// Write prints the report: every failure with its file, line, expected and
// actual outcome, the determining policies, any policy evaluation errors and
// the engine's message; with verbose, a line for every passing case too. The
// last line is exactly "N passed, N failed".
func (r Report) Write(w io.Writer, verbose bool) error {
	bw := bufio.NewWriter(w)
	for _, cr := range r.Results {
		if cr.Passed {
			if verbose {
				fmt.Fprintf(bw, "--- PASS: %s\n", cr.title())
			}
			continue
		}
		fmt.Fprintf(bw, "--- FAIL: %s\n", cr.title())
		if cr.Err != nil {
			fmt.Fprintf(bw, "    expected: %s\n", cr.Expected)
			fmt.Fprintf(bw, "    error:    %v\n", cr.Err)
			continue
		}
		fmt.Fprintf(bw, "    expected: %s\n", cr.Expected)
		fmt.Fprintf(bw, "    got:      %s\n", cr.Got)
		for _, f := range cr.Failures {
			fmt.Fprintf(bw, "    %s\n", f)
		}
		for i, d := range cr.Decisions {
			prefix := "    "
			if cr.Batch {
				fmt.Fprintf(bw, "    [%d] %s\n", i+1, describe(d))
				prefix = "      "
			}
			writeDetails(bw, prefix, d)
		}
	}
	fmt.Fprintf(bw, "%d passed, %d failed\n", r.Passed, r.Failed)
	return bw.Flush()
}

func writeDetails(w io.Writer, prefix string, d pdp.Decision) {
	for _, e := range d.Errors {
		fmt.Fprintf(w, "%sevaluation error in policy %s: %s\n", prefix, e.PolicyID, e.Message)
	}
	if d.Message != "" {
		fmt.Fprintf(w, "%smessage: %s\n", prefix, d.Message)
	}
}

func (cr CaseResult) title() string {
	kind := ""
	if cr.Batch {
		kind = "batch "
	}
	return fmt.Sprintf("%s / %s%s (%s:%d)", cr.Suite, kind, cr.Name, cr.File, cr.Line)
}
