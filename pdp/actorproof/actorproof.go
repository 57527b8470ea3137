// Package actorproof proves who acts in a delegation or consent change.
// The calling application names the actor; with actor tokens configured
// the request must also carry that person's token from the identity
// provider (header Actor-Token), whose sub is the actor's id, issued to
// one of the calling application's clients (when Options.Clients is set)
// and not used for a change before (when Options.Spent is set). Without
// actor tokens, the application's word is trusted (it authenticated its
// user).
package actorproof

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ciampdp/pdp/pdp/jwtverify"
)

// Header carries the actor's token on an admin request.
const Header = "Actor-Token"

// SubjectType is the type of the actors a token can prove: end users.
const SubjectType = "user"

// MaxJTIBytes bounds the jti of a single-use token (what is remembered).
const MaxJTIBytes = 256

// ErrUnproven: the change names an actor the request does not prove (no
// token, a token that does not verify, one of someone else, one issued
// to another application's client, or one already used). Answered with
// 401; nothing changes.
var ErrUnproven = errors.New("actor not proven")

// ErrKeysUnavailable: the identity provider's keys cannot be loaded, so
// no token can be checked; the change is refused (503), fail closed.
var ErrKeysUnavailable = jwtverify.ErrKeysUnavailable

// ErrReplayUnavailable: single use is on and the token's use cannot be
// recorded (the memory store is full, or the database cannot be
// reached); the change is refused (503), fail closed.
var ErrReplayUnavailable = errors.New("actor token uses cannot be recorded")

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

// Options bind a Prover's tokens to the caller and to one use.
type Options struct {
	// Clients maps each calling application (its API key's application
	// name) to the OAuth client ids its users' tokens are issued to: the
	// token's client (see ClientOf) must be one of them, and an
	// application not in the map proves no one. Nil: tokens are not
	// bound to an application.
	Clients map[string][]string
	// Spent, when set, makes every token prove one change: its issuer
	// and jti are spent by the first change it proves and refused after, until the
	// token's exp plus Leeway. Nil: a token proves any number of changes
	// until it expires.
	Spent Spent
	// Leeway is the verifier's clock skew on exp: a spent jti is
	// remembered that much longer.
	Leeway time.Duration
}

// Prover checks actors against the token in the context; safe for
// concurrent use.
type Prover struct {
	v       *jwtverify.Verifier
	clients map[string][]string
	spent   Spent
	leeway  time.Duration
}

// New returns a Prover that verifies tokens with v, bound as opts say.
func New(v *jwtverify.Verifier, opts Options) *Prover {
	return &Prover{v: v, clients: opts.Clients, spent: opts.Spent, leeway: opts.Leeway}
}

// Prove returns nil when ctx carries a valid token whose subject is the
// user actorID (actorType must be "user"), issued to a client of the
// calling application app and, with single use, not used before (it is
// then spent); an error wrapping ErrUnproven when it does not, one
// wrapping ErrKeysUnavailable when the keys cannot be loaded and one
// wrapping ErrReplayUnavailable when its use cannot be recorded. The
// message is safe to show the client.
func (p *Prover) Prove(ctx context.Context, app, actorType, actorID string) error {
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
	if err := p.bound(app, claims); err != nil {
		return err
	}
	if p.spent == nil {
		return nil
	}
	return p.spend(ctx, claims)
}

// bound checks that the token was issued to one of app's clients.
func (p *Prover) bound(app string, claims jwtverify.Claims) error {
	if p.clients == nil {
		return nil
	}
	ids, ok := p.clients[app]
	if !ok {
		return fmt.Errorf("%w: application %q may not prove actors: auth.actor_tokens.clients does not list it (fail closed)", ErrUnproven, app)
	}
	client, err := ClientOf(claims)
	if err != nil {
		return fmt.Errorf("%w: the %s is not bound to a client: %v", ErrUnproven, Header, err)
	}
	if !slices.Contains(ids, client) {
		return fmt.Errorf("%w: the %s was issued to the client %q, not to one of application %q's (%s)",
			ErrUnproven, Header, client, app, strings.Join(ids, ", "))
	}
	return nil
}

// spend records the token's one use.
func (p *Prover) spend(ctx context.Context, claims jwtverify.Claims) error {
	jti, ok := claims["jti"].(string)
	switch {
	case !ok || jti == "":
		return fmt.Errorf("%w: the %s has no jti, and single use (auth.actor_tokens.single_use) needs one", ErrUnproven, Header)
	case len(jti) > MaxJTIBytes:
		return fmt.Errorf("%w: the %s's jti is longer than %d bytes", ErrUnproven, Header, MaxJTIBytes)
	}
	exp, ok := claims["exp"].(float64) // the verifier required it
	if !ok {
		return fmt.Errorf("%w: the %s's exp is not a number", ErrUnproven, Header)
	}
	until := time.Unix(int64(exp), 0).Add(p.leeway + time.Second)
	if r, ok := p.spent.(interface{ RemembersSince() time.Time }); ok {
		// A store that forgets on restart cannot tell whether an older
		// token was used before it: such tokens are refused.
		iat, ok := claims["iat"].(float64)
		since := r.RemembersSince()
		// iat is in whole seconds: a token of the start's second passes.
		if !ok || time.Unix(int64(iat), 0).Add(p.leeway).Before(since.Truncate(time.Second)) {
			return fmt.Errorf("%w: the %s was issued before this PDP started remembering used tokens (%s; they are kept in memory): ask the identity provider for a new one",
				ErrUnproven, Header, since.UTC().Format(time.RFC3339))
		}
	}
	iss, _ := claims["iss"].(string) // the verifier required the configured issuer
	var fresh bool
	var err error
	if q, ok := p.spent.(interface {
		SpendFor(ctx context.Context, sub, issuer, jti string, until time.Time) (bool, error)
	}); ok {
		sub, _ := claims["sub"].(string)
		fresh, err = q.SpendFor(ctx, sub, iss, jti, until)
	} else {
		fresh, err = p.spent.Spend(ctx, iss, jti, until)
	}
	if errors.Is(err, ErrSubjectFull) {
		return fmt.Errorf("%w: %s jti: %v", ErrUnproven, Header, err)
	}
	if err != nil {
		return fmt.Errorf("%s jti: %w", Header, err)
	}
	if !fresh {
		return fmt.Errorf("%w: the %s (jti %q) was already used for a change: a token proves one change only; ask the identity provider for a new one", ErrUnproven, Header, jti)
	}
	return nil
}

// ClientOf is the OAuth client a token was issued to: its azp claim (the
// authorized party, OpenID Connect), else its client_id (RFC 9068). Both
// present and different, or neither, is an error. The aud claim is not
// used: it must name the PDP (auth.actor_tokens.audience).
func ClientOf(claims map[string]any) (string, error) {
	get := func(name string) (string, bool, error) {
		v, ok := claims[name]
		if !ok {
			return "", false, nil
		}
		s, isStr := v.(string)
		if !isStr || s == "" {
			return "", true, fmt.Errorf("its %s is not a non-empty string", name)
		}
		return s, true, nil
	}
	azp, hasAZP, err := get("azp")
	if err != nil {
		return "", err
	}
	cid, hasCID, err := get("client_id")
	if err != nil {
		return "", err
	}
	switch {
	case hasAZP && hasCID && azp != cid:
		return "", fmt.Errorf("its azp %q and client_id %q differ", azp, cid)
	case hasAZP:
		return azp, nil
	case hasCID:
		return cid, nil
	}
	return "", errors.New("it names no client (azp or client_id)")
}
