// Package actorproof proves who acts in a delegation or consent change.
// The calling application names the actor; with actor tokens configured
// the request must also carry that person's token from the identity
// provider (header Actor-Token), whose sub is the actor's id. Without
// them, the application's word is trusted (it authenticated its user).
package actorproof

import (
	"context"
	"errors"
	"fmt"

	"github.com/ciampdp/pdp/pdp/jwtverify"
)

// Header carries the actor's token on an admin request.
const Header = "Actor-Token"

// SubjectType is the type of the actors a token can prove: end users.
const SubjectType = "user"

// ErrUnproven: the change names an actor the request does not prove (no
// token, a token that does not verify, or one of someone else). Answered
// with 401; nothing changes.
var ErrUnproven = errors.New("actor not proven")

// ErrKeysUnavailable: the identity provider's keys cannot be loaded, so
// no token can be checked; the change is refused (503), fail closed.
var ErrKeysUnavailable = jwtverify.ErrKeysUnavailable

type tokenKey struct{}

// WithToken returns ctx carrying the raw token of the request ("" for
// none), for a Prover to check.
func WithToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, tokenKey{}, token)
}

func tokenFrom(ctx context.Context) string {
	s, _ := ctx.Value(tokenKey{}).(string)
	return s
}

// Prover checks actors against the token in the context; safe for
// concurrent use.
type Prover struct{ v *jwtverify.Verifier }

// New returns a Prover that verifies tokens with v.
func New(v *jwtverify.Verifier) *Prover { return &Prover{v: v} }

// Prove returns nil when ctx carries a valid token whose subject is the
// user actorID (actorType must be "user"), an error wrapping ErrUnproven
// when it does not, and one wrapping ErrKeysUnavailable when the keys
// cannot be loaded. The message is safe to show the client.
func (p *Prover) Prove(ctx context.Context, actorType, actorID string) error {
	tok := tokenFrom(ctx)
	if tok == "" {
		return fmt.Errorf("%w: the change names the actor %s:%s, but the request carries no %s header (the actor's token from the identity provider)",
			ErrUnproven, actorType, actorID, Header)
	}
	claims, err := p.v.Verify(ctx, tok)
	if err != nil {
		var te *jwtverify.TokenError
		if errors.As(err, &te) {
			return fmt.Errorf("%w: %s: %s", ErrUnproven, Header, te.Reason)
		}
		return fmt.Errorf("%s: %w", Header, err)
	}
	sub, _ := claims["sub"].(string)
	if actorType != SubjectType || sub == "" || sub != actorID {
		return fmt.Errorf("%w: the %s is user %q's, not the actor %s:%s's", ErrUnproven, Header, sub, actorType, actorID)
	}
	return nil
}
