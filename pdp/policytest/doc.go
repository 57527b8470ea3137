// Package policytest owns policy test suites: it finds the *_test.yaml files
// of a policy bundle, decodes their AuthZEN requests exactly as the HTTP API
// does, runs them against a Decider and reports what differed. It is what
// `pdp test` runs; the file format is described by
// docs/policy-test.schema.json.
package policytest
