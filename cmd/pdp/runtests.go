package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/policytest"
)

func testCommand() *command {
	return &command{
		name:    "test",
		args:    "[dir]",
		summary: "run the policy test suites (*_test.yaml) of a bundle (default .) against its policies",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolP("verbose", "v", false, "list passing cases too")
		},
		run: runTests,
	}
}

func runTests(ctx context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
	dir, err := bundleArg(args)
	if err != nil {
		return err
	}
	verbose, _ := fs.GetBool("verbose")
	b, err := loadBundle(ctx, std.out, dir)
	if err != nil {
		return err
	}
	suites, err := findSuites(dir)
	if err != nil {
		fmt.Fprintln(std.out, err)
		fmt.Fprintln(std.out, "invalid test files")
		return errReported
	}
	if len(suites) == 0 {
		return fmt.Errorf("no test files (*%s) found under %s", policytest.FileSuffix, dir)
	}
	var report policytest.Report
	for _, s := range suites {
		r, err := runSuite(ctx, b, s)
		if err != nil {
			return err
		}
		report.Passed += r.Passed
		report.Failed += r.Failed
		report.Results = append(report.Results, r.Results...)
	}
	if err := report.Write(std.out, verbose); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if report.Failed > 0 {
		return errReported
	}
	return nil
}

// findSuites loads the test suites of the bundle rooted at root: every
// *_test.yaml under it, except in hidden folders, in testdata folders and
// in nested bundles (folders holding their own policies folder, such as the
// examples under a repository's root bundle), which are tested on their own.
// Problems in any file are returned together.
func findSuites(root string) ([]policytest.Suite, error) {
	var files []string
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if path == root {
				return nil
			}
			if name := e.Name(); strings.HasPrefix(name, ".") || name == "testdata" || isDir(filepath.Join(path, "policies")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(e.Name(), policytest.FileSuffix) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find test files: %w", err)
	}
	var suites []policytest.Suite
	var errs []error
	for _, f := range files {
		s, err := policytest.LoadSuites(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		suites = append(suites, s...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return suites, nil
}

// runSuite runs one suite against an engine with exactly the facts the
// suite declares (policytest.NewEngine).
func runSuite(ctx context.Context, b *policy.Bundle, s policytest.Suite) (policytest.Report, error) {
	engine, done, err := policytest.NewEngine(ctx, b, s)
	if err != nil {
		return policytest.Report{}, err
	}
	defer done()
	return policytest.Run(ctx, engine, []policytest.Suite{s}), nil
}
