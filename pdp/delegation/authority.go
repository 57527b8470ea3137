package delegation

import "context"

// ActorProver proves that the actor of a change is the person the calling
// application names, for example with a verified end-user token the
// caller passed in ctx (package actorproof). It is the edge to whatever
// authenticates end users; the Service asks it before every change.
type ActorProver interface {
	// Prove returns nil when ctx carries proof that the subject
	// actorType:actorID is acting through the calling application app;
	// otherwise an error saying why not (which the HTTP layer answers
	// with 401).
	Prove(ctx context.Context, app, actorType, actorID string) error
}

// proveActor asks the ActorProver, when there is one, about by.
func (s *Service) proveActor(ctx context.Context, by Actor) error {
	if s.actors == nil {
		return nil
	}
	return s.actors.Prove(ctx, by.Application, by.Subject.Type, by.Subject.ID)
}
