package policytest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/authzen"
)

// FileSuffix ends the name of every test file LoadSuites picks up.
const FileSuffix = "_test.yaml"

// Suite is one test file: named single evaluations and batches, each with
// the decisions it expects.
type Suite struct {
	// File is the path the suite was read from.
	File string
	// Name is the suite's name; the file's base name when it sets none.
	Name string
	// Application, when set, is the pdp.Request.Application of every
	// request of the suite.
	Application string
	// Relationships are the relationship facts the suite's decisions read,
	// in SpiceDB's text form (account:acc-alice#owner@user:alice, caveats
	// as [name:{"param":1}]): the runner of `pdp test` writes them into a
	// fresh embedded SpiceDB for the suite.
	Relationships []string
	// Delegations are the delegation records the suite's decisions read,
	// as a JSON array of records (pdp/delegation's format, with their
	// history); DelegationsFile, when the suite names a file instead, is
	// its path (relative paths are resolved against the suite's folder).
	Delegations     []byte
	DelegationsFile string
	// Consents are the consent ledger's seed for the suite ({"events":
	// […], "activity": {…}}, the format of consent.seed), inline as JSON or
	// from ConsentsFile.
	Consents     []byte
	ConsentsFile string
	// Signals are risk signals received before the suite's decisions, as
	// a JSON array of {"event": short name or URI, "subject": a subject
	// identifier, "time": RFC 3339, "transmitter", "jti", "payload"},
	// inline or from SignalsFile; the bundle's signals registry maps them.
	Signals     []byte
	SignalsFile string
	// Now, when set, is the clock of every decision of the suite, so that
	// validity windows give the same answers in any year.
	Now     time.Time
	Cases   []Case
	Batches []BatchCase
}

// Case is one Access Evaluation and what its decision must be.
type Case struct {
	Name string
	// Line is where the case starts in the suite's file.
	Line int
	// Body is the request as an AuthZEN /access/v1/evaluation JSON body.
	Body []byte
	// Request is Body decoded by authzen.DecodeEvaluation, with the suite's
	// Application set.
	Request pdp.Request
	Expect  Expect
}

// Expect is what a Case's decision must be. Decision is always checked; the
// other fields only when given.
type Expect struct {
	// Decision is true for an allow.
	Decision bool
	// Policies, when not nil, is the exact set of determining policy ids
	// (an empty, non-nil slice: no policy may determine the decision).
	Policies []string
	// Reasons are reason codes the decision must carry (it may carry more).
	Reasons []string
	// Obligations, when not nil, is the exact set of obligations.
	Obligations []string
}

// BatchCase is one Access Evaluations request and the decisions it must
// answer, in order, after its evaluations_semantic is applied.
type BatchCase struct {
	Name string
	// Line is where the batch starts in the suite's file.
	Line int
	// Body is the request as an AuthZEN /access/v1/evaluations JSON body.
	Body []byte
	// Eval is Body decoded by authzen.DecodeEvaluations, with the suite's
	// Application set on every request.
	Eval authzen.Batch
	// Expect holds the expected decisions (true for an allow), one for
	// each decision the response carries.
	Expect []bool
}

// Error is a problem with a test file, located at a line (0 when unknown).
type Error struct {
	File string
	Line int
	Err  error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// LoadSuites reads every *_test.yaml file under root, recursively, skipping
// hidden folders; root may also name one test file. Suites come back in
// path order. All problems of all files are returned together (each one an
// *Error naming file and line); no suite is returned then. A root without
// test files gives no suites and no error.
func LoadSuites(root string) ([]Suite, error) {
	files, err := findFiles(root)
	if err != nil {
		return nil, err
	}
	suites := make([]Suite, 0, len(files))
	var errs []error
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, &Error{File: f, Err: err})
			continue
		}
		s, err := ParseSuite(f, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		suites = append(suites, s)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return suites, nil
}

// findFiles lists the test files under root in lexical path order.
func findFiles(root string) ([]string, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("policy tests: %w", err)
	}
	if !fi.IsDir() {
		return []string{root}, nil
	}
	var out []string
	err = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if path != root && strings.HasPrefix(e.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(e.Name(), FileSuffix) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("policy tests: %w", err)
	}
	return out, nil
}
