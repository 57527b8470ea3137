package changefeed

import (
	"context"
	"fmt"
)

// Publisher is told of a change that may alter a decision (reason:
// delegation.revoke, consent.withdraw, …) after it was made.
type Publisher interface {
	Publish(ctx context.Context, reason string) (uint64, error)
}

// Outbox is a Publisher that can record a change as coming before it is
// made (the feed shared by replicas on PostgreSQL): if the process dies
// between making the change and publishing it, another replica publishes
// it for it, so no sidecar of another replica keeps an answer cached from
// before the change longer than a bounded time.
type Outbox interface {
	Publisher
	Prepare(ctx context.Context, reason string) (Pending, error)
}

// Pending is a change recorded as coming. Publish it once it was made;
// Drop it when the method made no change. Neither is needed for safety:
// a pending change left alone is published by a replica's sweep (a
// needless publish costs the sidecars their cached answers, nothing else).
type Pending interface {
	Publish(ctx context.Context) (uint64, error)
	Drop(ctx context.Context)
}

// Finish publishes (made) or drops (not made) a change begun by Begin.
type Finish func(ctx context.Context, made bool) (uint64, error)

// Begin is called by a service before it makes a change of reason: with
// an Outbox it records the change as coming first. The Finish it returns
// is always usable: when the record failed (the error, for the log),
// Finish publishes after the change as a plain Publisher does. With a nil
// p, Finish does nothing.
func Begin(ctx context.Context, p Publisher, reason string) (Finish, error) {
	if p == nil {
		return func(context.Context, bool) (uint64, error) { return 0, nil }, nil
	}
	plain := func(ctx context.Context, made bool) (uint64, error) {
		if !made {
			return 0, nil
		}
		return p.Publish(ctx, reason)
	}
	o, ok := p.(Outbox)
	if !ok {
		return plain, nil
	}
	pending, err := o.Prepare(ctx, reason)
	if err != nil {
		return plain, fmt.Errorf("change %s not recorded as coming before it is made: %w", reason, err)
	}
	return func(ctx context.Context, made bool) (uint64, error) {
		if !made {
			pending.Drop(ctx)
			return 0, nil
		}
		return pending.Publish(ctx)
	}, nil
}
