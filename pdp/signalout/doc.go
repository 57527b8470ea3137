// Package signalout is the PDP as an OpenID Shared Signals transmitter of
// its own changes: a delegation revoked, suspended or renounced and a
// consent withdrawn become Security Event Tokens (RFC 8417), queued in a
// persistent outbox and pushed (RFC 8935) to the configured receivers,
// retried with backoff until each receiver takes them. A receiver naming
// an application gets only what that application may read (the rules of
// the delegation and consent read APIs), checked again at start for what
// the outbox still holds (Release).
package signalout
