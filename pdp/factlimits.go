package pdp

import (
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/ciampdp/pdp/pdp/policy"
	"github.com/ciampdp/pdp/pdp/reason"
)

// What the relationship store (SpiceDB) refuses to be asked. The engine
// checks a request against these before asking, so that an id or a
// context the store cannot take gets its own reason code (and a search a
// 400) instead of looking like an outage (facts_unavailable, 503), and so
// that one such item cannot fail the checks of a whole batch.
const (
	// ReasonInvalidID: the subject, resource or on_behalf_of id cannot
	// name an object in the relationship store, so no fact about it can
	// exist or be asked (SpiceDB ids are 1 to 1024 of a-z A-Z 0-9 / _ | -
	// = +).
	ReasonInvalidID = reason.InvalidID
	// ReasonContextTooLarge: the request's scalar context values, which
	// the engine passes to SpiceDB caveats, exceed the caveat context
	// limit (MaxCaveatContextBytes).
	ReasonContextTooLarge = reason.ContextTooLarge
	// MaxCaveatContextBytes is SpiceDB's default limit on the encoded
	// caveat context of one check (--max-caveat-context-size, 4 KiB).
	MaxCaveatContextBytes = 4096
)

// Errors of a search whose input the relationship store would refuse;
// they wrap these (the API answers 400).
var (
	ErrInvalidID       = errors.New("pdp: id not valid in the relationship store")
	ErrContextTooLarge = errors.New("pdp: context too large for the relationship store's caveats")
)

// validObjectID is SpiceDB's grammar of an object id
// (^[a-zA-Z0-9/_|\-=+]{1,1024}$), without its wildcard "*": a request
// naming "*" must not match every object. A loop, not a regexp: it runs
// for every check of every decision.
func validObjectID(id string) bool {
	if len(id) == 0 || len(id) > 1024 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '/', c == '_', c == '|', c == '-', c == '=', c == '+':
		default:
			return false
		}
	}
	return true
}

// checkFactInput reports the first problem the relationship store would
// have with checks (an id it cannot hold, a caveat context over its
// limit) as a reason code and an error wrapping ErrInvalidID or
// ErrContextTooLarge; "" and nil when there is none.
func checkFactInput(checks []FactCheck) (string, error) {
	sized := false
	for _, c := range checks {
		for _, id := range [...]struct{ what, id string }{
			{c.SubjectType, c.SubjectID}, {c.ResourceType, c.ResourceID},
		} {
			if err := checkObjectID(id.what, id.id); err != nil {
				return ReasonInvalidID, err
			}
		}
		if c.Context != nil && !sized {
			sized = true
			if err := checkCaveatContext(c.Context); err != nil {
				return ReasonContextTooLarge, err
			}
		}
	}
	return "", nil
}

func checkObjectID(typ, id string) error {
	if validObjectID(id) {
		return nil
	}
	shown := id
	if len(shown) > 64 {
		shown = shown[:64] + "…"
	}
	return fmt.Errorf("%w: %s id %q: ids in the relationship store are 1 to 1024 characters of a-z A-Z 0-9 / _ | - = +",
		ErrInvalidID, typ, shown)
}

func checkCaveatContext(ctx map[string]any) error {
	if n := caveatContextSize(ctx); n > MaxCaveatContextBytes {
		return fmt.Errorf("%w: the context's scalar values take %d bytes as caveat context, at most %d: send large values elsewhere (properties are not passed to caveats)",
			ErrContextTooLarge, n, MaxCaveatContextBytes)
	}
	return nil
}

// caveatContextSize is the size of ctx encoded as the protobuf Struct a
// check carries (what SpiceDB measures): each member a map entry of its
// name and a Value holding a string, a number or a bool.
func caveatContextSize(ctx map[string]any) int {
	n := 0
	for k, v := range ctx {
		var value int
		switch v := v.(type) {
		case string:
			value = 1 + varintLen(len(v)) + len(v)
		case float64:
			value = 1 + 8
		case bool:
			value = 1 + 1
		default:
			value = 0 // null; the engine passes no other kinds
		}
		entry := 1 + varintLen(len(k)) + len(k) + 1 + varintLen(value) + value
		n += 1 + varintLen(entry) + entry
	}
	return n
}

func varintLen(n int) int { return (bits.Len64(uint64(n)|1) + 6) / 7 }

// replayRefused re-runs, for replay under b, the checks prepare makes
// before asking the relationship store, so that a decision denied
// invalid_id or context_too_large replays to the same answer. "" and nil
// when b lets the request through to the store.
func replayRefused(b *policy.Bundle, caveated map[string]map[string]bool, plan actionPlan, req Request, in builtInput, now time.Time) (string, error) {
	if len(plan.rel) == 0 && len(plan.onBehalf) == 0 {
		return "", nil
	}
	subject := ObjectRef{Type: b.ObjectType(in.Principal.Type), ID: string(in.Principal.ID)}
	caveats := caveatContext(req.Context, now)
	checks := factChecks(b, plan.rel, in, subject, caveats, caveated)
	if len(plan.onBehalf) > 0 {
		if obo, err := onBehalfOf(b, req, subject); err == nil && obo != nil {
			checks = append(checks, factChecks(b, plan.onBehalf, in, *obo, caveats, caveated)...)
		}
	}
	return checkFactInput(checks)
}
