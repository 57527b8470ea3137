package policytest_test

import (
	"encoding/json"
	"testing"

	"github.com/ciampdp/pdp/pdp/policytest"
)

// FuzzLoadSuite: the suite decoder never panics, and what it accepts is
// well-formed: named cases with JSON bodies, batches expecting decisions.
func FuzzLoadSuite(f *testing.F) {
	for _, seed := range []string{
		validSuite,
		runSuite,
		"",
		"name: x\n",
		"cases: [{name: a, request: {subject: {type: u, id: a}, action: {name: v}, resource: {type: d, id: d}}, expect: {decision: true}}]",
		"cases:\n  - name: a\n    request: &r {subject: {type: u, id: a}, action: {name: v}, resource: {type: d, id: d}}\n    expect: {decision: false, policies: []}\n  - {name: b, request: *r, expect: {decision: true}}\n",
		"batches: [{name: b, request: {evaluations: [{}]}, expect: [true]}]",
		"batches: [{name: b, request: {subject: {type: u, id: a}, action: {name: v}, resource: {type: d, id: d}, evaluations: []}, expect: [false]}]",
		"cases: [{name: a, request: {subject: {type: u, id: a, properties: {? [1, 2] : x, 3: .inf}}}, expect: {decision: true}}]",
		"a: &a [*a]",
		"- !!binary aGVsbG8=\n- !!timestamp 2001-12-14\n",
		"cases:\n- <<: {name: m}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := policytest.ParseSuite("fuzz_test.yaml", data)
		if err != nil {
			return
		}
		if len(s.Cases)+len(s.Batches) == 0 {
			t.Fatal("accepted a suite with nothing to run")
		}
		for _, c := range s.Cases {
			if c.Name == "" || !json.Valid(c.Body) {
				t.Fatalf("accepted case %q with body %q", c.Name, c.Body)
			}
		}
		for _, b := range s.Batches {
			if b.Name == "" || !json.Valid(b.Body) || len(b.Expect) == 0 {
				t.Fatalf("accepted batch %q with body %q, expect %v", b.Name, b.Body, b.Expect)
			}
		}
	})
}
