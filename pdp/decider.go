package pdp

import "context"

// Decider decides requests: *Engine, and the wrappers around it (the
// decision trail's recorder). It returns ErrNotReady while no policy
// version is loaded. Declared here, once, for every package that takes
// one (the HTTP API, the trail, the policy tests).
type Decider interface {
	Decide(ctx context.Context, req Request) (Decision, error)
	DecideBatch(ctx context.Context, reqs []Request) ([]Decision, error)
}

// Searcher answers the AuthZEN search APIs: *Engine, and the wrappers
// around it. It is passed on its own, never found by asserting a Decider,
// so that a wrapper cannot drop it unnoticed.
type Searcher interface {
	SearchSubjects(ctx context.Context, req Request) ([]Entity, error)
	SearchResources(ctx context.Context, req Request) ([]Entity, error)
	SearchActions(ctx context.Context, req Request) ([]string, error)
}

// Reserver decides like a Decider and keeps back what the decisions
// change in the engine's counters (velocity and failed step-up rules)
// and the activity they mark (dormancy) until the caller commits the
// Pending: *Engine. The decision trail's recorder takes it to commit a
// decision's changes once its record is written, and to drop them when
// the record failed.
//
// The caller settles the Pending it gets on every path, an error
// included: it drops every decision's changes and commits (which tells
// the sidecars of a block others saw and that is gone). A Pending left
// unsettled holds back every later commit of the keys it reserved, for
// good. An implementation may return a Pending with an error (a wrapper
// passing on its inner decider's); the nil Pending is settled at no
// cost.
type Reserver interface {
	DecideReserved(ctx context.Context, req Request) (Decision, *Pending, error)
	DecideBatchReserved(ctx context.Context, reqs []Request) ([]Decision, *Pending, error)
}

var (
	_ Decider  = (*Engine)(nil)
	_ Reserver = (*Engine)(nil)
	_ Searcher = (*Engine)(nil)
)
