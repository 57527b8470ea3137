// Package api owns the PDP's HTTP front, built on echo: the AuthZEN 1.0
// evaluation endpoints and metadata document, the policy status, the health,
// readiness and metrics endpoints, API-key authentication, and the mapping
// of errors to HTTP statuses (in one place, errors.go).
//
// Routes, with BasePath applied only to the AuthZEN POST endpoints:
//
//	POST {BasePath}/access/v1/evaluation       single decision
//	POST {BasePath}/access/v1/evaluations      batch (or single without items)
//	POST {BasePath}/access/v1/noop             baseline, when EnableNoop
//	GET  /.well-known/authzen-configuration    metadata document
//	GET  /.well-known/authzen-configuration/*  tenant form of the same
//	GET  /v1/policies                          policy status (authenticated)
//	GET  /v1/changes                           sidecars' change feed, when Deps.Changes (changes.go)
//	POST /v1/trail/ingest                      sidecars' decision records, when Deps.Ingest (ingest.go)
//	GET  /healthz, /readyz, /metrics           operations (never authenticated)
package api
