// Package signalledger owns the append-only signal ledger: the events of
// verified Security Event Tokens, stored once per transmitter and jti (a
// JSON-lines file or PostgreSQL), recorded in the decision trail before
// they are stored, indexed by entity in memory for the engine's risk
// guard, and published to the sidecars' change feed.
package signalledger
