// Package delegation owns delegations as first-class records: who may act
// for whom (power of attorney, statutory guardian, legal representative,
// sub-delegation), for which actions, resources, amounts and time window,
// with the full event history of every record. It enforces the rules on
// write (Service), keeps the records in a Store (an fsynced JSON-lines file
// or PostgreSQL), projects the active ones into SpiceDB relationships
// (SpiceDBProjector) and, at decision time, resolves "may actor A act for
// principal P doing action X on resource R now?" into a status and the
// chain of delegation ids that proves it (Service.Resolve).
//
// # SpiceDB convention
//
// A delegation <id> that is active is written as these relationships (the
// example schema examples/northbank/schema/northbank.zed, and
// testdata/delegation.zed here, follow it):
//
//	delegation:<id>#principal@<principal.type>:<principal.id>
//	delegation:<id>#agent@<agent.type>:<agent.id>[delegation_window]
//	delegation:<id>#parent@delegation:<parent>          (sub-delegations only)
//	<principal.type>:<principal.id>#delegate_<a>@delegation:<id>#agent
//	    for each action a of the scope ("any" for "*") when the delegation
//	    covers every resource of the principal, or else
//	<r.type>:<r.id>#delegate_<a>@delegation:<id>#agent
//	    for each resource r it is limited to.
//
// The agent relationship carries the caveat delegation_window with the
// context {"valid_from": RFC 3339, "valid_until": RFC 3339}; the check
// supplies "now". When the delegation has a maximum amount, its
// delegate_<a> relationships carry the caveat amount_limit with the context
// {"max_amount": <number>} (the check supplies "amount"), except on
// relations whose schema takes only the plain subject delegation#agent
// (actions that move no money, such as view_statements): those are written
// without it. The caveats are declared as
//
//	caveat delegation_window(now timestamp, valid_from timestamp, valid_until timestamp) {
//	  now >= valid_from && now < valid_until
//	}
//	caveat amount_limit(amount double, max_amount double) {
//	  amount <= max_amount
//	}
//
// and a resource grants an action to its owner's delegates with, for
// example, `permission view_statements = owner + delegate_view_statements +
// delegate_any + owner->delegate_view_statements + owner->delegate_any`.
// Relations the schema does not declare are skipped. A record that is not
// in force (offered, suspended, revoked, renounced, expired, or with an
// ancestor that is not active) has none of these relationships. One whose
// window has not begun is written already: the delegation_window caveat
// holds it back until valid_from, and nothing else would write it then.
//
// # Consistency between the Store and SpiceDB
//
// The Store is the source of truth. Every change is written to the Store
// first and projected after; when the projection fails the change stands
// and the Service returns the record with an error wrapping ErrProjection.
// Service.Reconcile re-projects every record (at start, and after such a
// failure). Service.Resolve reads only the Store, with one Store.Lineage
// read (on PostgreSQL one recursive query); Service.ResolveBatch answers a
// batch of decisions with one such read.
//
// # Who reads a record
//
// An application reads a record through GetFor and ListFor, as a Reader:
// only the records it took part in (it offered one or made a change of
// its history — not a revocation cascaded from a parent it ended, marked
// Event.Cascade), the register-sourced ones when it is a register
// application, or every record when it is one of
// Config.ReaderApplications (see Reader). Any other record is not found,
// exactly as an unknown id. Get and List read every record, for the PDP's
// own uses (decisions, the auditor's console, reports).
//
// # The journal: record, then apply
//
// With a Journal (the decision trail, in the PDP) every change a caller
// asks for is recorded before it is written to the Store, holding the
// record as it will be stored. A change whose record fails is not applied
// (ErrNotRecorded); one whose Store write fails after its record is
// journalled as not applied. So the trail never holds an acknowledged
// change the Store lacks unless the Store lost it afterwards, and that is
// what the PDP checks at start (package adminlog; 'pdp repair' applies
// such changes from the trail).
package delegation
