// Package authzen owns the OpenID AuthZEN Authorization API 1.0 wire format:
// strict decoding of evaluation and batch-evaluation bodies into pdp.Request
// values, the decision and metadata documents sent back, and the batch
// short-circuit semantics. It contains no HTTP.
package authzen
