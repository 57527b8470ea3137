// Package recorder owns the decision record: a [Recorder] wraps the engine
// and writes every decision (batch items too), search answer and
// administrative action into a trail log before it is answered.
//
// Mode sync makes the record durable first (a failed write turns the
// answer into a deny with trail_unavailable); mode async goes through a
// bounded buffer that blocks or denies when full, never drops. From a
// failed write until a write succeeds again the trail is down: Ready says
// so (and tries a write, the trail.recovered record), and the
// pdp_trail_unavailable gauge is 1.
//
// What a decision changes in the engine's counters (velocity and failed
// step-up rules) and the activity it marks (the last activity of its
// principal, data subject and delegations, which dormancy reads): its
// [pdp.Pending], is made once its record is written (sync) or buffered
// (async), and dropped when the decision becomes a trail_unavailable
// deny: neither the counters nor the activity hold anything the trail
// does not show.
//
// Searches (kind search) and administrative actions (kind admin: consent
// and delegation changes, policy versions put into service, reads of the
// trail, retention runs) are recorded in the same chain as decisions.
//
// A decision record is encoded by hand (encode.go): no reflection, a
// pooled buffer, and exactly the bytes encoding/json's Marshal writes for
// DecisionBody, so the trail's format and every leaf hash are unchanged.
package recorder
