package relations

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// transientAttempts is how many times a read is asked in all when its
// failure says nothing about the question: one more try at once, inside
// the same deadline. Reads are idempotent; a second failure is final and
// the decision fails closed.
const transientAttempts = 2

// transient reports whether a failed read may succeed when sent again at
// once: the connection to SpiceDB or to its datastore broke or timed out
// under the call (SpiceDB answers a datastore read error as Unknown, a
// lost connection as Unavailable, a serialization conflict as Aborted).
// Errors about the question itself (bad arguments, unknown schema) are not.
func transient(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Unknown, codes.Aborted:
		return true
	}
	return false
}

// retryRead calls read until it succeeds, fails for a reason that is not
// transient, the caller's context ends, or transientAttempts are spent.
func retryRead[T any](ctx context.Context, read func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range transientAttempts {
		v, err = read()
		if err == nil || !transient(err) || ctx.Err() != nil {
			return v, err
		}
	}
	return v, err
}
