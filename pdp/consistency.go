package pdp

import "context"

// consistencyKey carries a request's consistency token in its context.
type consistencyKey struct{}

// WithConsistencyToken returns ctx carrying token: the relationship
// store's revision token (a SpiceDB ZedToken, as a delegation change
// answers it) that the facts of decisions made under ctx must be at least
// as fresh as. An empty token adds nothing.
func WithConsistencyToken(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return context.WithValue(ctx, consistencyKey{}, token)
}

// ConsistencyToken returns the token WithConsistencyToken put in ctx, or "".
// A FactSource honours it in CheckFacts; lookups (search candidates) may
// ignore it, since every candidate is then decided through CheckFacts.
func ConsistencyToken(ctx context.Context) string {
	t, _ := ctx.Value(consistencyKey{}).(string)
	return t
}
