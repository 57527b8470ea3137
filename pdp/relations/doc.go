// Package relations owns the relationship facts of the PDP (ownership,
// delegation, guardianship, representation, memberships) and keeps them in
// SpiceDB: embedded in this process on the memory or PostgreSQL datastore,
// or a remote SpiceDB service. The decision engine asks for the facts of a
// decision in one bulk check, never from a snapshot older than the newest
// write it knows of, and denies when they cannot be read.
package relations
