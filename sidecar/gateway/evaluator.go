package gateway

import (
	"context"

	"github.com/ciampdp/pdp/pdp"
	"github.com/ciampdp/pdp/pdp/authzen"
)

// Evaluator answers one AuthZEN Access Evaluation. The request is the
// AuthZEN 1.0 information model (pdp.Request marshals to the wire body;
// its Application field is never sent: the PDP learns the calling
// application from the API key). The answer is the AuthZEN Decision object
// the PDP sends. An error means no decision was made: the gateway denies.
//
// The central PDP client (ClientEvaluator) implements it; the sidecar's
// cache wraps the same interface.
type Evaluator interface {
	Evaluate(ctx context.Context, req pdp.Request) (authzen.DecisionResponse, error)
}

// EvaluatorFunc adapts a function to Evaluator.
type EvaluatorFunc func(ctx context.Context, req pdp.Request) (authzen.DecisionResponse, error)

// Evaluate calls f.
func (f EvaluatorFunc) Evaluate(ctx context.Context, req pdp.Request) (authzen.DecisionResponse, error) {
	return f(ctx, req)
}

var _ Evaluator = EvaluatorFunc(nil)
