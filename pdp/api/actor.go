package api

import (
	"errors"
	"fmt"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ciampdp/pdp/pdp/actorproof"
	"github.com/ciampdp/pdp/pdp/consent"
	"github.com/ciampdp/pdp/pdp/delegation"
	"github.com/ciampdp/pdp/pdp/reason"
	"github.com/ciampdp/pdp/pdp/revalidation"
)

// Reason codes of admin errors that are not a service's rule code.
const (
	// ReasonActorUnproven: actor tokens are on and the change's actor is
	// not proven by the request's Actor-Token (401).
	ReasonActorUnproven = reason.ActorUnproven
	// ReasonActorKeysUnavailable: the identity provider's keys cannot be
	// loaded, so no actor can be proven (503, fail closed).
	ReasonActorKeysUnavailable = reason.ActorKeysUnavailable
	// ReasonActorReplayUnavailable: single-use actor tokens are on and the
	// token's use cannot be recorded (503, fail closed).
	ReasonActorReplayUnavailable = reason.ActorReplayUnavailable
)

// withActorToken hands the request's Actor-Token header to the services
// in the request context: with actor tokens configured they prove the
// actor of every change with it (package actorproof).
func withActorToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		vs := r.Header.Values(actorproof.Header)
		switch len(vs) {
		case 0:
			return next(c)
		case 1:
			c.SetRequest(r.WithContext(actorproof.WithToken(r.Context(), strings.TrimSpace(vs[0]))))
			return next(c)
		default:
			return fmt.Errorf("%w: more than one %s header", actorproof.ErrUnproven, actorproof.Header)
		}
	}
}

// reasonOf is the stable code of an admin error, for the "reason" field of
// the error answer ("" when it has none).
func reasonOf(err error) string {
	var (
		cr *consent.RuleError
		dr *delegation.RuleError
	)
	switch {
	case errors.Is(err, actorproof.ErrUnproven):
		return ReasonActorUnproven
	case errors.Is(err, actorproof.ErrKeysUnavailable):
		return ReasonActorKeysUnavailable
	case errors.Is(err, actorproof.ErrReplayUnavailable):
		return ReasonActorReplayUnavailable
	case errors.As(err, &cr):
		return cr.Code
	case errors.As(err, &dr):
		return dr.Code
	case errors.Is(err, revalidation.ErrForbidden):
		return reason.Forbidden
	case errors.Is(err, revalidation.ErrNotFound):
		return reason.NotFound
	case errors.Is(err, revalidation.ErrInvalid):
		return reason.Invalid
	case errors.Is(err, revalidation.ErrNotRecorded):
		return reason.TrailUnavailable
	}
	return ""
}
