// Package gateway owns the reverse-proxy adapters that enforce PDP decisions
// without application code: a route table that maps an HTTP request (method
// and path) to an AuthZEN evaluation, the subject taken from a verified JWT
// or a trusted proxy header, and the nginx auth_request and Envoy ext_authz
// (HTTP service) handlers that answer allow, deny or "who are you?".
//
// Decisions come from an Evaluator: the central PDP client, or the
// sidecar's cache in front of it. Every failure to decide is a deny (fail
// closed). See README.md for the proxy configuration.
package gateway
