// Package signals owns risk signals from OpenID Shared Signals
// transmitters: Security Event Tokens (RFC 8417) decoded and verified
// against a configured transmitter, subject identifiers (RFC 9493), the
// signals registry of a policy bundle (schema/signals.yaml: which event
// type does what to which action, until when) and which received events
// hold for a request. The ledger is package signalledger.
package signals
